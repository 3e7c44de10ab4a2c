from .config_errors import check_modalities, explain_config_errors, run_main
from .dist import distributed_model_wrapper_cfg, finish_distributed, init_distributed
from .extra_state import decode_extra_state, encode_extra_state
from .launch import (
    add_data_root_argument,
    check_overrides,
    load_tool_config,
    prepare_strategy,
    read_config,
    read_tool_config,
    set_data_root,
)
from .setup_env import register_all_modules

__all__ = ['add_data_root_argument', 'check_modalities', 'check_overrides',
           'decode_extra_state', 'distributed_model_wrapper_cfg', 'encode_extra_state',
           'explain_config_errors', 'finish_distributed', 'init_distributed',
           'load_tool_config', 'prepare_strategy', 'read_config', 'read_tool_config',
           'register_all_modules', 'run_main', 'set_data_root']
