"""Where the example tasks are and which one runs by default: names without an import of PyTorch.

Kept apart so that what needs only these (a node's config, the keeper, a member) never loads
PyTorch: a member reconstructs and applies the mean update with numpy alone.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_TASK", "EXAMPLES_DIR"]

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
#: The task ``fedtss demo`` runs without ``--task``: an MLP on scikit-learn's digits.
DEFAULT_TASK = str(EXAMPLES_DIR / "digits_mlp.py")
