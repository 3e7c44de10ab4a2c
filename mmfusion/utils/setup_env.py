"""Registering mmfusion's modules and choosing its default scope."""
import datetime
import warnings

from mmengine.registry import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmfusion module that registers components.

    Args:
        init_default_scope: also make ``mmfusion`` the default registry scope,
            so ``type='...'`` names resolve in mmfusion first.
    """
    import mmfusion.datasets  # noqa: F401,F811
    import mmfusion.engine  # noqa: F401,F811
    import mmfusion.evaluation  # noqa: F401,F811
    import mmfusion.models  # noqa: F401,F811

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmfusion'):
        if current is not None and current.scope_name != 'mmfusion':
            warnings.warn(f'The current default scope "{current.scope_name}" is not '
                          '"mmfusion"; switching to a new "mmfusion" scope.')
        # a unique instance name, as several scopes may be created in one process
        DefaultScope.get_instance(f'mmfusion-{datetime.datetime.now()}', scope_name='mmfusion')
