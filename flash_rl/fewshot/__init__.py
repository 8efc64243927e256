"""Few-shot performance prediction for resource-configuration search (FLASH case study I).

* :mod:`~flash_rl.fewshot.episodes` — few-shot episodes drawn from measured applications;
* :mod:`~flash_rl.fewshot.models` — the base learner, FLASH's shot encoder, episodic training, the baselines;
* :mod:`~flash_rl.fewshot.evaluate` — held-out evaluation (MAPE, choice regret, bootstrap CIs, the table);
* :mod:`~flash_rl.fewshot.predictor` — a trained predictor as one object: fit, predict from named shots, choose, save;
* :mod:`~flash_rl.fewshot.cli` — ``flash config-eval``.
"""
