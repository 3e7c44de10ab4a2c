"""Audio synthesis: the sounding object's colour as the pitch of a few beeps."""
import numpy as np

from .scenes import Scene
from .spec import AUDIO_DURATION, AUDIO_SAMPLE_RATE, COLOR_FREQS


def synthesize_audio(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """2-4 beeps at the sounding object's colour pitch, int16 mono."""
    n_samples = int(AUDIO_SAMPLE_RATE * AUDIO_DURATION)
    color = scene.objects[scene.sounding].color
    freq = COLOR_FREQS[color] * (1.0 + rng.uniform(-0.02, 0.02))
    n_beeps = int(rng.integers(2, 5))
    durations = rng.uniform(0.08, 0.16, size=n_beeps)
    # Split the silent time randomly into lead-in, gaps (>= 40 ms) and tail.
    min_gap = 0.04
    free = AUDIO_DURATION - durations.sum() - min_gap * (n_beeps - 1) - 0.01
    silences = rng.dirichlet(np.ones(n_beeps + 1)) * free
    t = np.arange(n_samples) / AUDIO_SAMPLE_RATE
    signal = np.zeros(n_samples)
    onset = silences[0]
    ramp = int(0.005 * AUDIO_SAMPLE_RATE)  # 5 ms fades avoid clicks
    for i, dur in enumerate(durations):
        start = int(onset * AUDIO_SAMPLE_RATE)
        stop = min(start + int(dur * AUDIO_SAMPLE_RATE), n_samples)
        env = np.ones(stop - start)
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp] *= fade
        env[-ramp:] *= fade[::-1]
        amp = rng.uniform(0.3, 0.6)
        signal[start:stop] += amp * env * np.sin(2 * np.pi * freq *
                                                 t[start:stop])
        onset += dur + min_gap + silences[i + 1]
    signal += rng.normal(0.0, rng.uniform(0.01, 0.03), size=n_samples)
    return np.clip(np.rint(signal * 32767), -32768, 32767).astype(np.int16)


__all__ = ['synthesize_audio']
