"""Densification: gsplat's DefaultStrategy, with the opacity reset it documents actually applied.

In gsplat 1.5.3 `DefaultStrategy.step_post_backward` tests `step % self.reset_every == 0 & step > 0`.
`&` binds tighter than `==` and `>`, so this is the chained comparison
`step % reset_every == (0 & step) > 0`, whose second half `0 > 0` is always false: opacities are
never reset. `OpacityResetStrategy` performs the documented reset after the parent's step. Should a
later gsplat fix the test, both resets run at the same step; resetting is a clamp, so that is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsplat.strategy import DefaultStrategy
from gsplat.strategy.ops import reset_opa


@dataclass
class OpacityResetStrategy(DefaultStrategy):
    def step_post_backward(self, params, optimizers, state, step, info, packed=False):
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if 0 < step < self.refine_stop_iter and step % self.reset_every == 0:
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)
