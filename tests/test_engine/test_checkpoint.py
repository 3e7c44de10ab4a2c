"""Checkpoints hold plain data and load with torch's weights-only unpickler."""
import io

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmfusion.engine import PlainCheckpointHook, from_plain, to_plain


def test_message_hub_round_trips_as_plain_data():
    hub = MessageHub.get_instance('plain-checkpoint-test')
    for v in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', v)
    hub.update_info('eta', np.float64(3.5))
    checkpoint = dict(meta=dict(epoch=1, best=np.float32(0.5)), message_hub=hub.state_dict())
    PlainCheckpointHook().before_save_checkpoint(None, checkpoint)

    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    # no allow-list at all is needed for the converted checkpoint
    with torch.serialization.safe_globals([]):
        loaded = torch.load(buf, weights_only=True)
    assert isinstance(loaded['meta']['best'], float)

    PlainCheckpointHook().after_load_checkpoint(None, loaded)
    restored = MessageHub.get_instance('plain-checkpoint-restored')
    restored.load_state_dict(loaded['message_hub'])
    history = restored.get_scalar('train/loss')
    assert isinstance(history, HistoryBuffer)
    assert history.mean() == np.mean([1.0, 2.0, 4.0]) and history.current() == 4.0
    assert restored.get_info('eta') == 3.5


def test_original_history_buffer_pickle_is_refused_by_weights_only():
    """Why the conversion exists: MMEngine's own objects do not load safely."""
    buf = io.BytesIO()
    hb = HistoryBuffer([1.0, 2.0], [1, 1])
    hb.statistics('mean')
    torch.save({'b': hb}, buf)
    buf.seek(0)
    import pickle
    try:
        torch.load(buf, weights_only=True)
        refused = False
    except pickle.UnpicklingError:
        refused = True
    assert refused


def test_to_plain_and_back_keep_nested_values():
    data = {'a': [np.int64(3), (np.float32(1.5),)], 'b': np.arange(3)}
    plain = to_plain(data)
    assert plain == {'a': [3, (1.5,)], 'b': [0, 1, 2]}
    assert from_plain(plain) == {'a': [3, (1.5,)], 'b': [0, 1, 2]}
