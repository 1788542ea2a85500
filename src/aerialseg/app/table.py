"""The user's class table in the app (``aerialseg gui --classes FILE``).

With a table, the maps, the legend, the statistics and Save… follow its names, colours and
order; Correct mode paints its classes (keys 1-9 and the legend are its rows), so the saved
labels are indices into it; and Improve model hands it to the fine-tune
(``finetune(classes=...)``), whose model then has the table's classes as its own.

The rule, kept simple so that the window never claims what the model cannot do: every class
of the model must be in the table (background ones such as Unlabeled may be left out), as
``segment`` requires, but the table may add classes the model does not know, because the app
can teach them: they are in the painting palette like any other, and Improve model learns
them from the strokes. Until a model has learnt one, the map cannot show it: its output is
held far below every other (never drawn, no share of the confidence) and the legend marks it
"not learnt" rather than a 0 % that would read "looked, found none".
"""

from __future__ import annotations

from pathlib import Path

UNLEARNT_BIAS = -1e4
"""The bias of a class the model has not learnt: below any logit a trained class gives."""


def load_for_table(path, device: str, table):
    """(Segmenter, names of the table's classes it has not learnt) for checkpoint ``path``
    (None: the bundled model) following ``table`` (None: the model's own classes)."""
    from ..inference.segmenter import DEFAULT_MODEL, Segmenter, load_segmenter

    if table is None:
        return load_segmenter(path, device=device), ()
    from ..classes import check_known, match_names
    from ..models.checkpoint import load_checkpoint
    from ..models.retarget import retarget

    path = Path(path) if path else DEFAULT_MODEL
    model, own, meta = load_checkpoint(path)
    check_known(table, own, "--classes", new_ok=True)
    model = retarget(model, own, table)
    rows = [i for i, j in enumerate(match_names(table, own)) if j is None]
    if rows:
        _silence(model.head, rows)
    meta.setdefault("name", path.stem)
    return Segmenter(model, table, meta, device=device), tuple(table.names[i] for i in rows)


def _silence(head, rows: list[int]) -> None:
    """Hold the outputs ``rows`` of the 1x1 head below every other: a new class's row starts
    at the mean of the others (models.retarget), which could still win a near tie."""
    import torch

    with torch.no_grad():
        if head.bias is None:
            head.bias = torch.nn.Parameter(head.weight.new_zeros(head.out_channels))
        head.weight[rows] = 0
        head.bias[rows] = UNLEARNT_BIAS
