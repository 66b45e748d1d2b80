"""Functional checks of the students' models: the reference's weights loaded by position, one fixed input,
every layer's output compared with the reference's.

This file imports only torch (``pa3`` lazily, whichever is on the path): the grader runs ``observe`` with
the instructor's pa3 (the reference) and has it run in the sandbox with the student's, then ``judge``
compares the two observations outside the sandbox.

- ``fill_by_position(model, seed)``: every state_dict entry gets values that depend only on its
  position, its shape and its kind (conv weight, bias, BatchNorm statistics), so a student's model whose
  layers are defined in the reference's order gets the reference's weights whatever its names;
- ``probe(model, x)``: the state_dict's shapes, the output of every layer with weights in the order they
  run, the model's output;
- ``observe(name)``: build the model of check ``name``, fill it, probe it on its fixed input (values only);
- ``judge(reference, mine)``: None, or a message a student can act on that names the first layer that differs.
"""
import math

import torch

# task number -> the records its hidden checks compare against
TASK_RECORDS = {5: ["unet"], 6: ["resnet50_deconv"], 7: ["aspp", "resnet101_aspp"], 8: ["unet_aspp"]}

# name -> what observe builds and feeds it; "after": what the reference's forward does after its last
# layer with weights (said when only the final output differs). The ASPP input (24x24) is wider than rate 18.
REFERENCES = {
    "unet": dict(kind="model", model="unet", num_classes=3, input_shape=(1, 3, 32, 32),
                 what="U-Net (task 5, report Table 2)",
                 after="returns the classifier's output as it is"),
    "resnet50_deconv": dict(kind="model", model="resnet50_deconv", num_classes=3, input_shape=(1, 3, 64, 64),
                            what="ResNet-50 + deconvolutions (task 6, report Table 3)",
                            after="returns the classifier's output as it is"),
    "aspp": dict(kind="aspp", kwargs={"in_channels": 8, "out_channels": 8}, input_shape=(1, 8, 24, 24),
                 what="ASPP(in_channels=8, out_channels=8) (task 7, report Table 4)",
                 after="applies the projection's ReLU (row 8) and returns"),
    "resnet101_aspp": dict(kind="model", model="resnet101_aspp", num_classes=3, input_shape=(1, 3, 64, 64),
                           what="ResNet-101 + ASPP (task 7)",
                           after="upsamples the logits to the input size (F.interpolate, mode='bilinear', "
                                 "align_corners=False) and returns them"),
    "unet_aspp": dict(kind="model", model="unet_aspp", num_classes=3, input_shape=(1, 3, 32, 32),
                      what="U-Net + ASPP (task 8)",
                      after="returns it as it is (the classifier ASPP ends in a plain 1x1 conv, no BatchNorm or ReLU)"),
}


# ---------------------------------------------------------------------------------------------------------
# weights by position

def _kind(key, tensor):
    """What a state_dict entry is, from its key's last part and its shape only (names may differ)."""
    suffix = key.rsplit(".", 1)[-1]
    if not tensor.is_floating_point() or suffix == "num_batches_tracked":
        return "skip"
    if suffix in ("running_mean", "running_var"):
        return suffix
    if tensor.ndim >= 2:
        return "weight"  # conv, transposed conv, linear
    if suffix == "weight":
        return "norm_weight"  # BatchNorm (or another norm) scale
    return "bias"  # conv/linear/BatchNorm bias and anything else 1-d or scalar


@torch.no_grad()
def fill_by_position(model, seed=0):
    """Overwrite every state_dict entry (parameters and buffers) in place with deterministic values.

    Entry ``i`` draws from a generator seeded with ``seed * 100003 + i``: conv/linear weights
    N(0, 2 / fan_in) with fan_in = prod(shape[1:]), biases 0.1 * N(0, 1), BatchNorm weights 1 + 0.1 * N,
    running_mean 0.1 * N, running_var 1 + 0.2 * U(0, 1); num_batches_tracked is left as is.
    """
    for index, (key, tensor) in enumerate(model.state_dict().items()):
        kind = _kind(key, tensor)
        if kind == "skip":
            continue
        g = torch.Generator().manual_seed(seed * 100003 + index)
        shape = tuple(tensor.shape)
        if kind == "running_var":
            values = 1 + 0.2 * torch.rand(shape, generator=g)
        else:
            values = torch.randn(shape, generator=g)
            if kind == "weight":
                values *= math.sqrt(2.0 / math.prod(shape[1:]))
            elif kind == "norm_weight":
                values = 1 + 0.1 * values
            else:  # bias, running_mean
                values *= 0.1
        tensor.copy_(values.to(tensor.dtype))
    return model


# ---------------------------------------------------------------------------------------------------------
# probing

def _layers(model, keys):
    """[(name, class name, positions)] for every module with state_dict entries of its own; positions are the
    indices of those entries in ``keys`` (the state_dict order)."""
    index = {key: i for i, key in enumerate(keys)}
    layers = []
    for name, module in model.named_modules():
        own = [n for n, _ in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))]
        keys_of_module = (f"{name}.{n}" if name else n for n in own)
        positions = tuple(sorted(index[k] for k in keys_of_module if k in index))
        if positions:
            layers.append((name, type(module).__name__, positions, module))
    return layers


def probe_params(model):
    """{"params": [(key, shape)]} of a model's state_dict (the part of ``probe`` that needs no forward)."""
    return {"params": [(key, tuple(value.shape)) for key, value in model.state_dict().items()]}


@torch.no_grad()
def probe(model, x):
    """Run ``model`` on ``x`` (eval mode, no grad) and record what it computes.

    Returns {"params": [(key, shape)] in state_dict order,
             "modules": [(name, class, positions)] of every layer with weights, in definition order,
             "layers": [(name, class, positions, output clone)] in CALL order (a layer called twice twice),
             "output": the model's output (a tensor, else None), "output_type": its type's name}.
    """
    state = model.state_dict()
    keys = list(state)
    layers, handles, calls = _layers(model, keys), [], []
    for name, cls, positions, module in layers:
        def hook(module, args, output, name=name, cls=cls, positions=positions):
            value = output.detach().clone() if torch.is_tensor(output) else None  # clone: in-place ReLUs follow
            calls.append((name, cls, positions, value))
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        output = model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {**probe_params(model),
            "modules": [(name, cls, positions) for name, cls, positions, _ in layers],
            "layers": calls,
            "output": output.detach().clone() if torch.is_tensor(output) else None,
            "output_type": type(output).__name__}


SAMPLE = 2048  # values kept per layer output in a record (a fixed, scattered subset)


def sample_index(numel, k=SAMPLE):
    """Which flat positions of a tensor with ``numel`` values a record keeps: all of them up to ``k``, else
    ``k`` positions scattered by a stride coprime to ``numel`` (computed, never stored)."""
    if numel <= k:
        return torch.arange(numel)
    step = 7919  # a prime; the next coprime number if it divides numel
    while math.gcd(step, numel) != 1:
        step += 2
    return torch.arange(k, dtype=torch.int64) * step % numel


def _summary(value):
    """(shape, max abs, sampled values) of a layer output: what a record keeps of it."""
    if value is None:
        return None
    flat = value.reshape(-1)
    scale = flat.abs().max().item() if flat.numel() else 0.0
    return tuple(value.shape), scale, flat[sample_index(flat.numel())].clone()


# ---------------------------------------------------------------------------------------------------------
# comparing

def _ordinal(n):
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _shape(shape):
    return str(tuple(shape))


def _difference(mine, ref, scale=None):
    """(max abs difference, max abs of the reference, within tolerance) of two equal-size tensors; ``scale``:
    the reference's max abs when ``ref`` is only a sample of it."""
    diff = (mine.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
    if scale is None:
        scale = ref.abs().max().item() if ref.numel() else 0.0
    return diff, scale, diff <= 1e-3 * scale + 1e-5  # False for NaN


def _compare_params(reference, mine, what):
    ref, got = reference["params"], mine["params"]
    where = "(parameters and BatchNorm buffers, in the order your __init__ defines the layers)"
    advice = ("Define the layers in __init__ in the order of the report's table, with its channel numbers, kernel "
              "sizes, biases and BatchNorms.")
    for i, ((my_key, my_shape), (ref_key, ref_shape)) in enumerate(zip(got, ref)):
        if tuple(my_shape) != tuple(ref_shape):
            return (f"Your {what} does not line up with the reference: entry {i + 1} of its state_dict {where} is "
                    f"your `{my_key}` of shape {_shape(my_shape)}, but the reference's entry {i + 1} is "
                    f"`{ref_key}` of shape {_shape(ref_shape)}. {advice}")
    if len(got) != len(ref):
        n = min(len(got), len(ref))
        extra = (f"your model has {len(got) - n} more, the first your `{got[n][0]}` of shape {_shape(got[n][1])}"
                 if len(got) > n else
                 f"yours stops there, the reference's next is `{ref[n][0]}` of shape {_shape(ref[n][1])}")
        return (f"Your {what} has {len(got)} state_dict entries {where}, the reference {len(ref)}: the first {n} "
                f"agree in shape, then {extra}. {advice}")
    return None


def _compare_layers(reference, mine, what, setting):
    """The first layer (in the reference's call order) whose output differs, as a message; else None. Layer
    outputs are ``_summary`` triples (a shape equal to the reference's means the same sampled positions)."""
    calls = [(name, cls, tuple(positions), value) for name, cls, positions, value in mine["layers"]]
    mine = {**mine, "modules": [(name, cls, tuple(positions)) for name, cls, positions in mine["modules"]]}
    reference = {**reference, "layers": [(name, cls, tuple(positions), value)
                                         for name, cls, positions, value in reference["layers"]]}
    seen, index = {}, {}
    for i, (name, cls, positions, value) in enumerate(calls):
        k = seen[positions] = seen.get(positions, 0) + 1
        index[(positions, k)] = i
    owners = {positions: (name, cls) for name, cls, positions in mine["modules"]}
    count, matched, last = {}, set(), None
    for n, (ref_name, ref_cls, positions, ref_summary) in enumerate(reference["layers"], 1):
        k = count[positions] = count.get(positions, 0) + 1
        before = (f"everything up to your `{last[0]}` ({last[1]}) matches; "
                  if last else "the first layer with weights to run already differs: ")
        i = index.get((positions, k))
        if i is None:
            if positions in owners:
                name, cls = owners[positions]
                runs = seen.get(positions, 0)
                return (f"Your {what} {setting}: {before}your `{name}` ({cls}), which holds the weights of the "
                        f"reference's `{ref_name}`, ran {runs} time{'s' if runs != 1 else ''} where the reference's "
                        f"runs {k} time{'s' if k != 1 else ''}. Check that your forward uses every layer once, "
                        f"in the order of the report's table.")
            keys = ", ".join(f"`{mine['params'][p][0]}`" for p in positions if p < len(mine["params"]))
            return (f"Your {what} {setting}: {before}the reference's next layer with weights, `{ref_name}` "
                    f"({ref_cls}, the {_ordinal(n)} in the order they run), holds state_dict entries {keys} of "
                    f"yours, which your model does not keep together in one {ref_cls}. Use one torch.nn layer "
                    f"per row of the report's table.")
        matched.add(i)
        name, cls, _, value = calls[i]
        label = (f"your `{name}` ({cls}, the {_ordinal(i + 1)} layer with weights in the order they run"
                 f"{'' if name == ref_name else f'; the reference calls it `{ref_name}`'})")
        cause = ("so what happens between the two differs: a missing or extra ReLU/BatchNorm/pooling, the wrong "
                 "tensor concatenated or added, or the wrong stride, padding or dilation (in this layer or a "
                 "pooling before it)" if last else
                 "so its stride, padding or dilation, or what your forward does to the input before it, differs")
        ref_shape = None if ref_summary is None else tuple(ref_summary[0])
        shape = None if value is None else tuple(value[0])
        if shape is None or ref_shape is None or shape != ref_shape:
            got = "no tensor" if shape is None else f"an output of shape {_shape(shape)}"
            return (f"Your {what} {setting}: {before}{label} gives {got} where the reference's gives "
                    f"{'no tensor' if ref_shape is None else _shape(ref_shape)}. Its weights equal the "
                    f"reference's, {cause}.")
        diff, scale, close = _difference(torch.as_tensor(value[2]), torch.as_tensor(ref_summary[2]), ref_summary[1])
        if not close:
            return (f"Your {what} {setting}: {before}{label} differs by up to {diff:.3g} (the reference's values "
                    f"reach {scale:.3g}). Its weights equal the reference's, {cause}.")
        last = (name, cls)
    if len(matched) != len(calls):
        name, cls, _, _ = calls[min(set(range(len(calls))) - matched)]
        return (f"Your {what} {setting}: every layer of the reference matches, but your model ran "
                f"{len(calls)} layer calls with weights where the reference runs {len(reference['layers'])}; "
                f"your `{name}` ({cls}) ran more often than in the reference. Use every layer once, as in the "
                f"report's table.")
    return None


def judge(reference, mine):
    """None when the observation ``mine`` (``observe`` on the student's pa3) computes what ``reference`` (the
    same on the instructor's) does, else one paragraph saying what differs first: (a) building the model,
    (b) the state_dict shapes by position, (c) the layer outputs in the order they run, with weights loaded by
    position, (d) the final output. Never raises."""
    what = reference["what"]
    setting = (f"computes something other than the reference (the reference's weights loaded by position, an "
               f"input of shape {_shape(reference['input_shape'])}, eval mode)")
    try:
        if mine.get("build_error"):
            return f"Building your {what} with {reference['spec_text']} raised {mine['build_error']}."
        message = _compare_params(reference, mine, what)
        if message:
            return message
        if mine.get("forward_error"):
            return (f"Your {what} raised {mine['forward_error']} on an input of shape "
                    f"{_shape(reference['input_shape'])} (eval mode, the reference's weights loaded by position).")
        message = _compare_layers(reference, mine, what, setting)
        if message:
            return message
        name, cls = mine["layers"][-1][:2] if mine["layers"] else ("", "")
        after = (f"After its last layer with weights (your `{name}`, {cls}) the reference "
                 f"{reference.get('after', 'returns')}; check what your forward does after `{name}`.")
        ref_out, out = reference["output"], mine["output"]
        if out is None:
            return (f"Your {what} returned a {mine['output_type']}, not a tensor: return the logits, a tensor of "
                    f"shape {_shape(ref_out.shape)}.")
        if tuple(out.shape) != tuple(ref_out.shape):
            return (f"Your {what}: every layer with weights matches the reference, but the output has shape "
                    f"{_shape(out.shape)} instead of {_shape(ref_out.shape)}. {after}")
        diff, scale, close = _difference(out, ref_out)
        if not close:
            return (f"Your {what}: every layer with weights matches the reference, but the output differs by up "
                    f"to {diff:.3g} (the reference's values reach {scale:.3g}). {after}")
        return None
    except Exception as error:  # anything unexpected (a malformed observation): still a message
        return f"Checking your {what} failed with {type(error).__name__}: {error}."


# ---------------------------------------------------------------------------------------------------------
# both sides: what a model computes

def _build(spec):
    """The model a spec describes, from the ``pa3`` on the path (the instructor's or the student's)."""
    if spec["kind"] == "aspp":
        from pa3.models import ASPP
        return ASPP(**spec["kwargs"])
    from pa3.models import build_model
    return build_model(spec["model"], spec["num_classes"])


def _spec_text(spec):
    if spec["kind"] == "aspp":
        return "pa3.models.aspp.ASPP(" + ", ".join(f"{k}={v!r}" for k, v in spec["kwargs"].items()) + ")"
    return f"build_model({spec['model']!r}, {spec['num_classes']})"


def shape_and_gradients(model_name, num_classes, input_shape):
    """``build_model(model_name, num_classes)`` on a random batch of ``input_shape``, then backward of the mean:
    {"shape": the output's shape, "every_parameter_has_a_gradient": bool}."""
    from pa3.models import build_model
    model = build_model(model_name, num_classes)
    out = model(torch.randn(input_shape))
    out.mean().backward()
    return {"shape": list(out.shape), "every_parameter_has_a_gradient": all(p.grad is not None for p in model.parameters())}


def model_input(name, seed=0):
    """The fixed input of functional check ``name``."""
    index = list(REFERENCES).index(name)
    shape = REFERENCES[name]["input_shape"]
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed * 100003 + 7919 + index))


def observe(name, seed=0):
    """What the ``pa3`` on the path computes for functional check ``name`` (a key of ``REFERENCES``): the model
    built (``torch.manual_seed(seed)`` first), then ``observe_model``. Run by the grader on the instructor's pa3
    (the reference) and in the sandbox on the student's: values only, which ``judge`` compares outside. An
    exception of the student's code is kept as text."""
    torch.manual_seed(seed)  # the models' own initialisation, overwritten by fill_by_position anyway
    try:
        model = _build(REFERENCES[name])
    except Exception as error:
        return {**_about(name, seed), "build_error": f"{type(error).__name__}: {error}"}
    return observe_model(model, name, seed)


def _about(name, seed):
    spec = REFERENCES[name]
    return {"name": name, "what": spec["what"], "after": spec["after"], "spec_text": _spec_text(spec),
            "input_shape": list(spec["input_shape"]), "seed": seed}


def observe_model(model, name, seed=0):
    """``model``'s state_dict shapes, then, with weights loaded by position (``fill_by_position``), every
    layer's output summarised (shape, max abs, ``SAMPLE`` sampled values) and the full output, on the fixed
    input of check ``name`` (``model_input``)."""
    seen = _about(name, seed)
    try:
        seen.update(probe_params(model))
        fill_by_position(model, seed)
    except Exception as error:
        return {**seen, "build_error": f"{type(error).__name__}: {error}"}
    try:
        result = probe(model, model_input(name, seed))
    except Exception as error:  # the student's forward
        return {**seen, "forward_error": f"{type(error).__name__}: {error}"}
    result["layers"] = [(name, cls, positions, _summary(value)) for name, cls, positions, value in result["layers"]]
    return {**seen, **result}
