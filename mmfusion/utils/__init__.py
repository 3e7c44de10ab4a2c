from .dist import distributed_model_wrapper_cfg, init_distributed
from .extra_state import decode_extra_state, encode_extra_state
from .launch import load_tool_config
from .setup_env import register_all_modules

__all__ = ['decode_extra_state', 'distributed_model_wrapper_cfg', 'encode_extra_state',
           'init_distributed', 'load_tool_config', 'register_all_modules']
