"""Gymnasium environments for cloud-system management, built on a SimPy discrete-event core.

Importing the package registers the environments:

=============================  ===========================================================
id                             what it is
=============================  ===========================================================
``flash/Autoscaling-v0``       horizontal + vertical autoscaling of a microservice (AWARE)
=============================  ===========================================================
"""

from gymnasium.envs.registration import register

register(id="flash/Autoscaling-v0", entry_point="flash_envs.envs.autoscaling:AutoscalingEnv")
