"""The quantization accuracy check: each artifact's mIoU drop (points) and agreement (fraction) against a budget."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """``max_miou_drop`` in percentage points of mIoU (0.5 = 0.005 as a fraction); ``min_agreement`` a fraction."""

    max_miou_drop: float | None = None
    min_agreement: float | None = None

    @property
    def active(self) -> bool:
        return self.max_miou_drop is not None or self.min_agreement is not None


def check(row: dict, budget: Budget) -> tuple[str, list[str]]:
    """("pass" | "fail" | "not checked" | "", reasons) for one artifact row; a broken artifact fails an active gate."""
    if not budget.active or row.get("reference"):
        return "", []
    if row["status"] == "not runnable":
        return "not checked", []
    if row["status"] != "ok":
        return "fail", [f"{row['status']}: {row.get('note', '')}".rstrip(": ")]
    reasons, unchecked = [], []
    if budget.max_miou_drop is not None:
        delta = row.get("delta_miou_points")
        if delta is None:
            unchecked.append("mIoU drop (no masks or no reference)")
        elif -delta > budget.max_miou_drop:
            reasons.append(f"mIoU drop {-delta:.2f} points > {budget.max_miou_drop:g}")
    if budget.min_agreement is not None:
        agreement = row.get("agreement")
        if agreement is None:
            unchecked.append("agreement (no reference)")
        elif agreement < budget.min_agreement:
            reasons.append(f"agreement {agreement:.4f} < {budget.min_agreement:g}")
    if reasons:
        return "fail", reasons
    return ("not checked", [f"not checked: {', '.join(unchecked)}"]) if unchecked else ("pass", [])
