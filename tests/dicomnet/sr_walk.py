"""Reading SR content trees back with plain pydicom (independent of the builders)."""

from __future__ import annotations

from pydicom.dataset import Dataset


def items(ds: Dataset) -> list[Dataset]:
    """Every content item of ``ds``'s tree, depth first."""
    out = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out.extend(items(item))
    return out


def numbers(ds: Dataset) -> dict[str, float]:
    """``{concept meaning: value}`` of the NUM items (the last one wins for repeats)."""
    found = {}
    for item in items(ds):
        if item.ValueType == "NUM":
            meaning = item.ConceptNameCodeSequence[0].CodeMeaning
            found[meaning] = float(item.MeasuredValueSequence[0].NumericValue)
    return found


def scoords3d(ds: Dataset) -> list[tuple[str, list[float], str]]:
    """``[(graphic type, graphic data, frame of reference UID)]`` of the SCOORD3D items."""
    return [
        (item.GraphicType, [float(v) for v in item.GraphicData],
         str(item.ReferencedFrameOfReferenceUID))
        for item in items(ds) if item.ValueType == "SCOORD3D"
    ]
