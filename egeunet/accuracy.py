"""The accuracy layer: how far an artifact's masks are from a reference's and from the truth, and whether that passes.

The unit is the per-image confusion count (TP, FP, FN, TN at threshold 0.5): every number is pooled from them, so
every number can also be resampled over images. ``compare`` gives a ``Comparison`` (explicit units: fractions for
agreement and IoU, percentage points for IoU drops, probabilities for |Δprob|), ``Comparison.interval`` a bootstrap
confidence interval over images, and ``Gate.check`` the one verdict used by export validation, benchmark rows,
sensitivity rankings and drift budgets. A criterion that cannot be computed (no reference, no masks) fails the gate:
a check that was asked for and did not run is never a pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from egeunet.metrics import THRESHOLD, image_counts, scores

LABELS = {"agreement": "mask agreement", "iou_drop_points": "IoU drop (points)", "max_abs_dprob": "max |dprob|"}
CONFIDENCE = 0.95
RESAMPLES = 2000
TRUTH_KEYS = ("miou", "dsc", "accuracy", "sensitivity", "specificity")


def _pooled_iou(counts: np.ndarray) -> np.ndarray:
    """Foreground IoU of confusion counts ... x 4 (0/0 -> 1.0)."""
    den = counts[..., 0] + counts[..., 1] + counts[..., 2]
    return np.where(den > 0, counts[..., 0] / np.maximum(den, 1), 1.0)


def _pooled_agreement(counts: np.ndarray) -> np.ndarray:
    """Share of pixels on which two masks agree, from counts ... x 4."""
    return (counts[..., 0] + counts[..., 3]) / np.maximum(counts.sum(-1), 1)


@dataclass(frozen=True)
class Comparison:
    """An artifact's probabilities against a reference's on N images, per-image counts kept for resampling.

    ``vs_reference``: artifact mask vs reference mask (None without a reference); ``artifact_vs_truth`` and
    ``reference_vs_truth``: each mask vs the truth (None without masks). ``truth`` names what stood in for truth.
    """

    vs_reference: np.ndarray | None
    artifact_vs_truth: np.ndarray | None
    reference_vs_truth: np.ndarray | None
    max_abs_dprob: float | None = None
    mean_abs_dprob: float | None = None
    finite: bool = True
    truth: str = "ground truth"
    _intervals: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # computed once each

    @property
    def images(self) -> int:
        """How many images every number rests on."""
        for counts in (self.vs_reference, self.artifact_vs_truth):
            if counts is not None:
                return len(counts)
        return 0

    @property
    def agreement(self) -> float | None:
        """Fraction of pixels whose mask decision equals the reference's (pooled over images)."""
        return None if self.vs_reference is None else float(_pooled_agreement(self.vs_reference.sum(0)))

    @property
    def iou_vs_reference(self) -> float | None:
        """Pooled IoU of the artifact's mask against the reference's mask (fraction)."""
        return None if self.vs_reference is None else float(_pooled_iou(self.vs_reference.sum(0)))

    @property
    def per_image_agreement(self) -> np.ndarray | None:
        """Agreement of each image (fractions, N)."""
        return None if self.vs_reference is None else _pooled_agreement(self.vs_reference)

    def truth_scores(self, which: str = "artifact") -> dict[str, float] | None:
        """The paper's pooled metrics (fractions) of the artifact's or the reference's masks against the truth."""
        counts = self.artifact_vs_truth if which == "artifact" else self.reference_vs_truth
        return None if counts is None else scores(*counts.sum(0))

    @property
    def iou_drop_points(self) -> float | None:
        """Pooled IoU against the truth, reference minus artifact, in percentage points (negative: artifact better)."""
        if self.artifact_vs_truth is None or self.reference_vs_truth is None:
            return None
        return float(100 * (_pooled_iou(self.reference_vs_truth.sum(0)) - _pooled_iou(self.artifact_vs_truth.sum(0))))

    def _resampled(self, metric: str, index: np.ndarray) -> np.ndarray:
        if metric == "agreement":
            return _pooled_agreement(self.vs_reference[index].sum(1))
        if metric == "iou_drop_points":
            return 100 * (_pooled_iou(self.reference_vs_truth[index].sum(1)) - _pooled_iou(self.artifact_vs_truth[index].sum(1)))
        raise ValueError(f"no interval for {metric!r}")

    def interval(self, metric: str, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                 seed: int = 0) -> tuple[float, float] | None:
        """Percentile bootstrap interval of ``agreement`` or ``iou_drop_points``, resampling whole images (computed
        once per metric and settings: the summary, the gate and the report share it)."""
        if getattr(self, metric) is None or self.images == 0:
            return None
        key = (metric, confidence, resamples, seed)
        if key not in self._intervals:
            index = np.random.default_rng(seed).integers(0, self.images, (resamples, self.images))
            values = self._resampled(metric, index)
            tail = 100 * (1 - confidence) / 2
            self._intervals[key] = (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        return self._intervals[key]

    def sort_key(self) -> tuple[float, float]:
        """Most drift first: lowest agreement, then largest mean |Δprob| (the one ranking order)."""
        return (self.agreement if self.agreement is not None else 1.0, -(self.mean_abs_dprob or 0.0))

    def summary(self) -> dict:
        """The numbers as a flat dict with units in the names (fractions unless ``_points``), plus 95% intervals."""
        out: dict = {"images": self.images, "truth": self.truth}
        if self.vs_reference is not None:
            out.update(agreement=self.agreement, agreement_interval=self.interval("agreement"),
                       iou_vs_reference=self.iou_vs_reference, max_abs_dprob=self.max_abs_dprob,
                       mean_abs_dprob=self.mean_abs_dprob)
        if self.artifact_vs_truth is not None:
            out.update(iou_artifact=float(_pooled_iou(self.artifact_vs_truth.sum(0))))
        if self.iou_drop_points is not None:
            out.update(iou_reference=float(_pooled_iou(self.reference_vs_truth.sum(0))),
                       iou_drop_points=self.iou_drop_points, iou_drop_interval=self.interval("iou_drop_points"))
        return out


def compare(probs: np.ndarray | None, reference: np.ndarray | None, truth: np.ndarray | None = None,
            truth_label: str = "ground truth", exact: np.ndarray | None = None) -> Comparison:
    """Compare artifact probabilities with reference probabilities and truth masks (each N x S x S, or None).

    With no truth masks, IoU drops are not computed; pass ``reference >= 0.5`` as ``truth`` (and a ``truth_label``
    saying so) to measure them against the reference's own masks. ``exact``: what the |Δprob| numbers are measured
    against instead of ``reference`` (fp16: the function the artifact is meant to compute; masks stay on ``reference``).
    """
    probs = None if probs is None else np.asarray(probs, np.float64)
    vs_ref = max_abs = mean_abs = None
    if probs is not None and reference is not None:
        reference = np.asarray(reference, np.float64)
        exact = reference if exact is None else np.asarray(exact, np.float64)
        if probs.shape != reference.shape or exact.shape != reference.shape:
            raise ValueError(f"output shape {list(probs.shape)} != reference {list(reference.shape)}")
        vs_ref = image_counts(probs, reference)
        diff = np.abs(probs - exact)
        max_abs, mean_abs = (float(diff.max()), float(diff.mean())) if diff.size else (0.0, 0.0)
    art_truth = None if truth is None or probs is None else image_counts(probs, truth)
    ref_truth = None if truth is None or reference is None else image_counts(reference, truth)
    finite = probs is None or bool(np.isfinite(probs).all())
    return Comparison(vs_ref, art_truth, ref_truth, max_abs, mean_abs, finite, truth_label)


@dataclass(frozen=True)
class Verdict:
    """A gate's decision: ``passed``, the reasons it failed, and per criterion the value, limit and interval."""

    passed: bool
    gate: str
    reasons: list[str] = field(default_factory=list)
    criteria: list[dict] = field(default_factory=list)

    @property
    def firm(self) -> bool:
        """Whether more images could change the decision: a pass is firm when every criterion's confidence interval
        lies on its passing side; a failure when any failed criterion's interval lies wholly beyond its limit (one
        firm failure settles it), or when it failed for another reason (NaN, a number that could not be checked)."""
        if self.passed:
            return all(c.get("firm", True) for c in self.criteria)
        failed = [c for c in self.criteria if not c["passed"]]
        return not failed or any(c.get("firm", True) for c in failed)

    def describe(self) -> dict:
        """The verdict as a manifest/report record."""
        return {"passed": self.passed, "gate": self.gate, "reasons": self.reasons, "criteria": self.criteria,
                "firm": self.firm}


@dataclass(frozen=True)
class Gate:
    """Limits on a ``Comparison``; unset limits are not checked. Units: fractions, points, probabilities."""

    min_agreement: float | None = None  # fraction of pixels, e.g. 0.99
    max_iou_drop_points: float | None = None  # percentage points of pooled IoU, e.g. 0.5
    max_abs_dprob: float | None = None  # largest |Δprob| of any pixel, e.g. 1e-4

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return any(v is not None for v in (self.min_agreement, self.max_iou_drop_points, self.max_abs_dprob))

    def describe(self) -> str:
        """The gate in words, e.g. 'agreement >= 0.99 and IoU drop <= 0.5 points'."""
        parts = []
        if self.min_agreement is not None:
            parts.append(f"mask agreement >= {self.min_agreement:g}")
        if self.max_iou_drop_points is not None:
            parts.append(f"IoU drop <= {self.max_iou_drop_points:g} points")
        if self.max_abs_dprob is not None:
            parts.append(f"max |dprob| <= {self.max_abs_dprob:g}")
        return " and ".join(parts) or "no gate"

    def check(self, comparison: Comparison | None, missing: str = "") -> Verdict:
        """The verdict on ``comparison``; a limit whose number is missing fails, saying why (``missing`` adds a cause)."""
        why = f" ({missing})" if missing else ""
        reasons: list[str] = []
        criteria: list[dict] = []
        c = comparison
        if c is not None and not c.finite:
            reasons.append("the artifact produced NaN or inf")
        checks = (("agreement", self.min_agreement, 1, "no reference to compare with"),
                  ("iou_drop_points", self.max_iou_drop_points, -1, "no ground-truth masks"),
                  ("max_abs_dprob", self.max_abs_dprob, -1, "no reference to compare with"))
        for metric, limit, sign, cause in checks:
            if limit is None:
                continue
            value = None if c is None else getattr(c, metric)
            if value is None:
                reasons.append(f"{LABELS[metric]} could not be checked: {cause}{why}")
                continue
            ok = value >= limit if sign > 0 else value <= limit
            record = {"metric": metric, "value": value, "limit": limit, "passed": bool(ok), "images": c.images}
            interval = c.interval(metric) if metric != "max_abs_dprob" else None
            if interval is not None:
                record["interval"] = [round(interval[0], 6), round(interval[1], 6)]
                record["firm"] = bool((min(interval) >= limit if sign > 0 else max(interval) <= limit) if ok
                                      else (max(interval) < limit if sign > 0 else min(interval) > limit))
            criteria.append(record)
            if not ok:
                shown = f"{value:.4f}" if metric == "agreement" else f"{value:.3g}"
                span = f" (95% interval {interval[0]:.4g}..{interval[1]:.4g} over {c.images} images)" if interval else ""
                reasons.append(f"{LABELS[metric]} {shown}{span} breaks the limit {limit:g}")
        return Verdict(not reasons, self.describe(), reasons, criteria)


def truth_metrics(probs: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The paper's pooled metrics (fractions) of probabilities against masks (the reference row of a benchmark)."""
    counts = image_counts(probs, masks)
    result = scores(*counts.sum(0))
    per_image = _pooled_iou(counts)
    return {**result, "image_iou_mean": float(per_image.mean()) if len(per_image) else float("nan")}


__all__ = ["Comparison", "Gate", "Verdict", "compare", "truth_metrics", "THRESHOLD", "TRUTH_KEYS"]
