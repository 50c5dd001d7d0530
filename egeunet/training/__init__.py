"""Training with the paper's recipe: ``train(TrainConfig(data=..., out=...)) -> RunResult``."""
from egeunet.training.recipe import TrainConfig, demo_config
from egeunet.training.run import RunResult, train

__all__ = ["TrainConfig", "RunResult", "demo_config", "train"]
