"""A module whose docstrings hold references, for the reference check's tests."""

from __future__ import annotations


def spin(count: int | None = None, shape: tuple[int, ...] = (1,)) -> None:
    """Spin the widget.

    Uses :class:`demo.Widget`, once more wrapped: :class:`demo
    .Widget`.

    A typo: :meth:`demo.Widget.spinn`.
    """


class Wheel:
    """A wheel."""

    def __init__(self) -> None:
        #: How far it turned, see :func:`demo.make_widgett`.
        self.turned = 0
