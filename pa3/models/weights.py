"""Pretrained weights: torchvision's (downloaded once into ``torch.hub.get_dir()/checkpoints``) or a local state
dict, loaded into a backbone with every missing or unexpected key named; offline, ``WeightsUnavailable`` says
where to put the file."""
import os
import urllib.parse

import torch

from pa3.files import BadFileError, load_torch


def _checkpoint_path(weights):
    filename = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


class WeightsUnavailable(RuntimeError):
    """torchvision's pretrained weights cannot be downloaded (offline) and are not in torch.hub's cache."""


def _download(weights):
    """State dict of a torchvision weights enum; offline -> RuntimeError saying where to put the file."""
    cached = _checkpoint_path(weights)
    if os.path.exists(cached):  # torch.hub's copy of an earlier download: checked like any weights file
        return load_torch(cached, "pretrained weights file", f"It is torch.hub's copy of {weights.url}: delete it "
                          f"and run again to download it again, or put an intact copy of that file there")
    try:
        # torch.hub (looked up at call time) caches into torch.hub.get_dir()/checkpoints and reuses the file
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=True, check_hash=True,
                                                  weights_only=True)
    except OSError as err:  # URLError, HTTPError, timeouts, no route to host
        path = _checkpoint_path(weights)
        raise WeightsUnavailable(
            f"could not download pretrained weights {weights} from {weights.url} ({err}). Offline? Download "
            f"that file elsewhere and put it at {path}, or pass pretrained='path/to/{os.path.basename(path)}' "
            f"(a local state dict), or pretrained=False to train from scratch") from err


_WEIGHTS_FIX = ("Pass the path of a state dict saved with torch.save(model.state_dict(), path), "
                "pretrained=True to download torchvision's weights, or pretrained=False")


def _read_state_dict(path):
    state = load_torch(path, "pretrained weights file", _WEIGHTS_FIX)
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise BadFileError(path, "holds no state dict (a dict of parameter name -> tensor)", _WEIGHTS_FIX,
                           "pretrained weights file")
    return state


def _pretrained_state(pretrained, weights):
    """``True`` -> download ``weights``; a path -> read it; False/None -> None (never touches the network)."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True or pretrained == "imagenet":
        return _download(weights)
    return _read_state_dict(os.fspath(pretrained))


def _load_exact(module, state, source, ignore=()):
    """load_state_dict that drops keys starting with ``ignore`` and names any missing/unexpected key."""
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore))}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"pretrained weights from {source} do not fit {type(module).__name__}: "
                           f"missing keys {result.missing_keys[:10]}{'...' if len(result.missing_keys) > 10 else ''}, "
                           f"unexpected keys {result.unexpected_keys[:10]}"
                           f"{'...' if len(result.unexpected_keys) > 10 else ''}")


def _load_resnet_backbone(trunk, pretrained, weights):
    """Load ImageNet ResNet weights (enum or file) into a ResNetTrunk; the classifier ``fc.*`` is dropped."""
    state = _pretrained_state(pretrained, weights)
    if state is not None:
        if any(k.startswith("backbone.") for k in state):  # a segmentation checkpoint: take its backbone
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        _load_exact(trunk, state, weights if pretrained is True else pretrained, ignore=("fc.",))
