"""What the machine running the tests has."""

from __future__ import annotations


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16/AMX): there bf16 autocast trains MiniLM ~1.3x
    faster (docs/performance.md#test-suite-settings) and the fixture's model
    scored the same (0.775 accuracy on its 200 held-out reviews, fp32 and bf16 alike); elsewhere it would be
    emulated and slower, so fp32."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
