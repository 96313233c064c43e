"""The pass/fail verdicts on a report, against the integration's thresholds (plain values the
Dagster asset checks and the command line both show)."""

from __future__ import annotations

from dataclasses import dataclass, field

from crm_pipelines.quality.model import QualityReport
from crm_pipelines.quality.thresholds import QualityThresholds

VALID_VALUES = "valid_values"
FEW_DUPLICATES = "few_duplicates"
NO_ORPHANS = "no_orphans"
NOT_STALE = "not_stale"
COMPLETE_FIELDS = "complete_fields"
PROVIDERS_AGREE = "providers_agree"

#: Check name -> what it asserts (the asset check's description).
CHECKS: dict[str, str] = {
    VALID_VALUES: "At most max_invalid_share of the records hold an e-mail, phone or CPF/CNPJ hygiene would refuse.",
    FEW_DUPLICATES: "At most max_duplicate_share of the records duplicate another of the store by e-mail, CPF/CNPJ or domain.",
    NO_ORPHANS: "At most max_orphans live local records whose record at the provider was deleted there.",
    NOT_STALE: "At most max_stale local records not synced to the integration for longer than stale_after_hours.",
    COMPLETE_FIELDS: "Each field named in min_completeness is filled in at least that share of the records.",
    PROVIDERS_AGREE: "At most max_provider_differences records on which the store's integrations disagree (not checked when unset).",
}


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    figures: dict[str, int | float] = field(default_factory=dict)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def evaluate(report: QualityReport, thresholds: QualityThresholds) -> list[CheckOutcome]:
    """One outcome per check in :data:`CHECKS`, each saying what it found in a sentence."""
    records = report.records
    invalid = report.invalid.records
    extra = sum(k.extra for k in report.duplicates.by_key)
    outcomes = [
        CheckOutcome(VALID_VALUES, _share(invalid, records) <= thresholds.max_invalid_share,
                     f"{invalid} of {records} records hold an invalid value (limit {thresholds.max_invalid_share:.2%})",
                     {"invalid_records": invalid, "share": _share(invalid, records), "limit": thresholds.max_invalid_share}),
        CheckOutcome(FEW_DUPLICATES, _share(extra, records) <= thresholds.max_duplicate_share,
                     f"{extra} records duplicate another (limit {thresholds.max_duplicate_share:.2%}); merge them with: crm-pipelines dedupe {report.entity}",
                     {"duplicate_records": extra, "share": _share(extra, records), "limit": thresholds.max_duplicate_share}),
        CheckOutcome(NO_ORPHANS, report.orphans.count <= thresholds.max_orphans,
                     f"{report.orphans.count} live records were deleted at the provider (limit {thresholds.max_orphans})",
                     {"orphans": report.orphans.count, "limit": thresholds.max_orphans}),
        CheckOutcome(NOT_STALE, report.stale.count <= thresholds.max_stale,
                     f"{report.stale.count} records not synced for over {thresholds.stale_after_hours:g} h (limit {thresholds.max_stale}); "
                     f"run the export of {report.integration}",
                     {"stale": report.stale.count, "limit": thresholds.max_stale}),
    ]
    wanted = {name.split(".", 1)[-1]: share for name, share in thresholds.min_completeness.items()
              if "." not in name or name.split(".", 1)[0] == report.entity}
    found = {f.field: f.share for f in report.completeness.fields}
    short = {name: found.get(name, 0.0) for name, share in wanted.items() if found.get(name, 0.0) < share}
    outcomes.append(CheckOutcome(COMPLETE_FIELDS, not short,
                                 "; ".join(f"{name} filled in {share:.1%} (at least {wanted[name]:.1%})" for name, share in short.items())
                                 or (f"{len(wanted)} fields filled as required" if wanted else "no field required (min_completeness is empty)"),
                                 {name: round(share, 4) for name, share in short.items()}))
    limit = thresholds.max_provider_differences
    differing = report.differences.differing
    outcomes.append(CheckOutcome(PROVIDERS_AGREE, limit is None or differing <= limit,
                                 f"{differing} of {report.differences.shared} shared records differ between the store's integrations"
                                 + (f" (limit {limit})" if limit is not None else " (no limit set)"),
                                 {"differing": differing, "shared": report.differences.shared}))
    return outcomes


__all__ = ["CHECKS", "CheckOutcome", "evaluate"]
