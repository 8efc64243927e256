"""The ``flash meta-train | adapt | evaluate | reproduce`` commands (one module each; see :mod:`flash_rl.cli`)."""
