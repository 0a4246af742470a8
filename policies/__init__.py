"""Safety policies as data: the AIDSAFE default set and a validating loader for user files."""

from aidsafe.policies.loader import (
    DEFAULT_POLICY_FILE,
    Policy,
    PolicyFileError,
    PolicySet,
    load_policies,
)

__all__ = ["DEFAULT_POLICY_FILE", "Policy", "PolicyFileError", "PolicySet", "load_policies"]
