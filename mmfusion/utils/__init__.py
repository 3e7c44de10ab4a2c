from .dist import distributed_model_wrapper_cfg, init_distributed
from .setup_env import register_all_modules

__all__ = ['distributed_model_wrapper_cfg', 'init_distributed', 'register_all_modules']
