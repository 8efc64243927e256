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

# Without Gymnasium's passive env checker (our tests run its full check_env on every env): in Gymnasium 1.4 the
# checker marks its first reset as done before the env's reset runs, so after a first reset that raised (a refused
# task), the env's next step() failed inside the checker with "cannot unpack non-iterable NoneType object".
register(id="flash/Autoscaling-v0", entry_point="flash_envs.envs.autoscaling:AutoscalingEnv",
         disable_env_checker=True)
register(id="flash/ConfigSearch-v0", entry_point="flash_envs.envs.config_search:ConfigSearchEnv",
         disable_env_checker=True)
register(id="flash/PowerManagement-v0", entry_point="flash_envs.envs.power_management:PowerManagementEnv",
         disable_env_checker=True)
