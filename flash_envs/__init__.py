"""Gymnasium environments for cloud-system management, built on a SimPy discrete-event core.

Importing the package registers the environments:

=============================  ===========================================================
id                             what it is
=============================  ===========================================================
``flash/Autoscaling-v0``       horizontal + vertical autoscaling of a microservice (AWARE)
``flash/ConfigSearch-v0``      measure resource configurations of a hidden app, commit to one (FLASH I)
``flash/PowerManagement-v0``   DVFS frequency control of heterogeneous servers under an SLO (FLASH III)
=============================  ===========================================================
"""

from gymnasium.envs.registration import register

register(id="flash/Autoscaling-v0", entry_point="flash_envs.envs.autoscaling:AutoscalingEnv")
register(id="flash/ConfigSearch-v0", entry_point="flash_envs.envs.config_search:ConfigSearchEnv")
register(id="flash/PowerManagement-v0", entry_point="flash_envs.envs.power_management:PowerManagementEnv")
