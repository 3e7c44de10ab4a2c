"""DeepSpeed ZeRO training: MMEngine's ``DeepSpeedStrategy``, with the checkpoint hooks run."""
from typing import Callable, Optional, Union

from mmengine._strategy import DeepSpeedStrategy as MMEngineDeepSpeedStrategy

from mmfusion.registry import STRATEGIES


@STRATEGIES.register_module()
class DeepSpeedStrategy(MMEngineDeepSpeedStrategy):
    """MMEngine's ``DeepSpeedStrategy`` that also calls the checkpoint hooks.

    Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
    Parameter Models", SC 2020: optimizer state (stage 1), gradients (2) and
    parameters (3) partitioned over the ranks. Everything is MMEngine's and
    DeepSpeed's; the one change is that MMEngine's strategy ignores the
    ``callback`` the ``FlexibleRunner`` passes, so the hooks'
    ``before_save_checkpoint`` / ``after_load_checkpoint`` never ran. Without
    them a checkpoint names the wrong epoch after a new best score (``--resume``
    then skips an epoch, see :class:`mmfusion.engine.CheckpointHook`), and
    mmfusion's plain-data message hub is not restored on resume.

    Registered under MMEngine's name, so configs write what MMEngine's docs
    show; ``tools/train.py`` fills in the optimizer wrapper from the config's
    usual one (:func:`mmfusion.utils.prepare_strategy`)::

        strategy = dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=2))

    Checkpoints are DeepSpeed's folders (``epoch_N.pth/`` with the model and
    each rank's optimizer partition), read back by DeepSpeed's own loader,
    which unpickles them: resume only from folders you wrote. ``zero_to_fp32.py``
    in the work dir turns one into a plain state dict.
    """

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None) -> None:
        extra_ckpt = {} if extra_ckpt is None else extra_ckpt
        if callback is not None:
            callback(extra_ckpt)
        super().save_checkpoint(filename, save_optimizer=save_optimizer,
                                save_param_scheduler=save_param_scheduler,
                                extra_ckpt=extra_ckpt)

    def load_checkpoint(self, filename: str, *, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')],
                        callback: Optional[Callable] = None) -> dict:
        checkpoint = super().load_checkpoint(filename, map_location=map_location, strict=strict,
                                             revise_keys=revise_keys)
        if callback is not None:
            callback(checkpoint)
        return checkpoint

    def resume(self, filename: str, *, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location: Union[str, Callable] = 'default',
               callback: Optional[Callable] = None) -> dict:
        checkpoint = super().resume(filename, resume_optimizer=resume_optimizer,
                                    resume_param_scheduler=resume_param_scheduler,
                                    map_location=map_location)
        if callback is not None:
            callback(checkpoint)
        return checkpoint


__all__ = ['DeepSpeedStrategy']
