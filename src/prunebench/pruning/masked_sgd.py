"""SGD that keeps pruned weights at exactly zero inside its own update.

Re-masking after the optimizer step (:class:`prunebench.KeepPruned`'s general path) reads every
masked weight and its float mask and writes the weight back: 12 bytes a weight each step, which
on a CPU costs several percent of a small model's step. :class:`MaskedSGD` folds the mask into
the one operation of SGD that writes the weight instead. torch's update ``param.add_(d_p,
alpha=-lr)`` becomes ``param.addcmul_(d_p, keep * -lr)``: 4 more bytes a weight, and on the CPU
the two kernels round alike (``addcmul_`` with ``value=-lr`` would not), so a surviving weight
takes exactly the value torch's SGD gives it and a pruned one, zero to begin with, stays zero. Everything else
(weight decay, momentum, dampening, Nesterov) is torch 2.13's single-tensor SGD step line by line.
The training loop builds its SGD as this class only when a callback can hand it a mask; dense
training runs ``torch.optim.SGD`` itself.

``tests/test_masked_sgd.py`` checks the claim bit for bit against ``torch.optim.SGD`` followed by
re-masking, over every setting :func:`prunebench.train.build_optimizer` uses. The exact path is
taken only where that check holds: parameters on the CPU in groups that are not foreach, fused or
differentiable; :meth:`MaskedSGD.hold` refuses anything else, and the caller then re-masks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch


class MaskedSGD(torch.optim.SGD):
    """``torch.optim.SGD``; after :meth:`hold`, its single-tensor step (the one torch takes on
    the CPU) in which the held parameters' pruned entries never move."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._keep: dict[int, torch.Tensor] = {}  # id(param) -> boolean keep-mask
        self._scaled: dict[int, tuple[float, torch.Tensor]] = {}  # id(param) -> (lr, keep * -lr)

    def hold(self, keep: Mapping[torch.Tensor, torch.Tensor]) -> bool:
        """From the next step on, update ``param`` only where ``keep[param]`` (bool, the
        parameter's shape) is True. Returns False and holds nothing where the exact path does not
        apply: a parameter this optimizer does not update, one off the CPU, or one in a foreach,
        fused or differentiable group."""
        groups = {id(p): group for group in self.param_groups for p in group["params"]}
        for param, mask in keep.items():
            group = groups.get(id(param))
            if (group is None or param.device.type != "cpu" or group["foreach"] or group["fused"]
                    or group["differentiable"] or isinstance(group["lr"], torch.Tensor)
                    or isinstance(group["weight_decay"], torch.Tensor)
                    or mask.dtype != torch.bool or mask.shape != param.shape):
                return False
        self._keep.update({id(param): mask.to(param.device) for param, mask in keep.items()})
        self._scaled.clear()
        return True

    def scaled_keep(self, param: torch.Tensor, lr: float) -> torch.Tensor:
        """``keep * -lr`` in the parameter's dtype, rebuilt when the learning rate changes."""
        cached = self._scaled.get(id(param))
        if cached is None or cached[0] != lr:
            cached = (lr, self._keep[id(param)].to(param.dtype).mul_(-lr))
            self._scaled[id(param)] = cached
        return cached[1]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        if not self._keep:  # nothing held (hold refused, say, off the CPU): torch's own step
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor | None] = []
            if self._init_group(group, params, grads, buffers):
                raise RuntimeError("MaskedSGD does not take sparse gradients")
            momentum = group["momentum"]
            for i, (param, grad) in enumerate(zip(params, grads)):
                buffer = self.update(param, grad, buffers[i] if momentum != 0 else None, group)
                if momentum != 0:
                    self.state[param]["momentum_buffer"] = buffer
        return loss

    def update(self, param: torch.Tensor, grad: torch.Tensor, buffer: torch.Tensor | None,
               group: dict) -> torch.Tensor | None:
        """torch 2.13's ``_single_tensor_sgd`` for one parameter, its last line masked where a
        mask is held; returns the momentum buffer."""
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(param, alpha=group["weight_decay"])
        if group["momentum"] != 0:
            if buffer is None:
                buffer = grad.detach().clone()
            else:
                buffer.mul_(group["momentum"]).add_(grad, alpha=1 - group["dampening"])
            grad = grad.add(buffer, alpha=group["momentum"]) if group["nesterov"] else buffer
        if id(param) in self._keep:
            param.addcmul_(grad, self.scaled_keep(param, group["lr"]))  # param.add_(grad, alpha=-lr), masked
        else:
            param.add_(grad, alpha=-group["lr"])
        return buffer
