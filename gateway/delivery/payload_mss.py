"""Payload kind `xdm-message`: the plan → CDA R2 (mappings.cda) → IHE_XDM.zip with METADATA.XML
(mappings.xds, via connectors.mss.xdm) → the MSSanté MIME message (connectors.mss.message),
with its PDF rendering. The document version is the plan version: version n > 1 replaces
version n - 1 (RPLC in the CDA, `action` C in METADATA.XML).

Validation: the XDM checks (layout, hash, size, ids) and the CDA gate (XSD + CI-SIS
schematrons) when its reference set is present — when it is not, an information problem says
the document went unchecked (the gate never passes silently, but its absence does not block
the demo machine).
"""

from __future__ import annotations

from gateway.delivery.payloads import BuildContext, PayloadKind, register
from gateway.model import Plan, Problem, Severity

KIND = "xdm-message"
SOURCE = "relais-mss-payload"


def _settings() -> dict:
    from gateway.settings import settings

    return settings().connectors.get("mss", {})


def build_message(plan: Plan, context: BuildContext) -> bytes:
    from connectors.mss import message as M
    from connectors.mss import xdm
    from connectors.mss.pdf import cda_to_pdf
    from mappings.cda import constants as C
    from mappings.cda import document_ids

    ids = document_ids(plan, max(1, context.plan_version))
    packed = xdm.pack_plan(plan, now=context.now, ids=ids)
    (entry,) = xdm.read(packed.archive).entries
    text, html = M.bodies(plan.title, plan.platform.name)
    return M.build(subject=M.subject_for(plan.title, plan), text=text, html=html, xdm=packed.archive,
                   cda_codes=[C.DOC_TYPE_CODE], qualified_ins=entry.ins is not None,
                   pdf=cda_to_pdf(packed.cda, now=context.now),
                   pdf_name=M.pdf_filename(plan, C.DOC_TYPE_DISPLAY), now=context.now,
                   product_reference=_settings().get("product_reference"))


def _problem(rule: str, message: str, severity=Severity.error, location: str = "/") -> Problem:
    return Problem(location=location, rule=rule, message=message, severity=severity, source=SOURCE)


def validate_message(payload: bytes, *, use_cda_gate: bool = True) -> list[Problem]:
    from connectors.mss import message as M
    from connectors.mss import xdm

    try:
        received = M.parse(payload)
    except M.MessageRefused as exc:
        return [_problem(exc.rule, exc.reason)]
    problems = [_problem("mime-defect", f"défaut MIME : {d}") for d in received.defects]
    if not received.subject.startswith(M.SUBJECT_PREFIX):
        problems.append(_problem("mss-subject", f"l'objet doit commencer par {M.SUBJECT_PREFIX} (ECO.2.1.3)"))
    if received.xdm is None:
        return problems + [_problem("mss-no-xdm", "pièce jointe IHE_XDM.zip absente")]
    if not any(a.content_type == "application/pdf" for a in received.attachments):
        problems.append(_problem("mss-no-pdf", "rendu PDF absent à côté de l'archive (ECO.2.1.1)", Severity.warning))
    try:
        package = xdm.read(received.xdm.data)
    except xdm.XdmRefused as exc:
        return problems + [_problem(exc.rule, exc.reason)]
    problems += xdm.check(package)
    codes = {xdm.cda_code(e.content) for e in package.entries if e.content}
    declared = {c.strip() for c in received.header("X-MSS-CODECDA").split(",") if c.strip()}
    if codes != declared:
        problems.append(_problem("mss-codecda", f"X-MSS-CODECDA ({', '.join(sorted(declared)) or 'absent'}) ne "
                                 f"correspond pas aux documents ({', '.join(sorted(c or '?' for c in codes))})"))
    if use_cda_gate:
        from gateway.conformance.cda.gate import cda_gate

        gate = cda_gate()
        for entry in package.entries:
            if entry.content is None:
                continue
            if not gate.available:
                problems.append(_problem("cda-gate-unavailable", "jeu de schématrons CDA absent : le document n'a pas "
                                         "été validé par la passerelle CDA", Severity.information))
                continue
            problems += gate.validate(entry.content)
    return problems


register(PayloadKind(name=KIND, content_type="message/rfc822", build=build_message, validate=validate_message))
