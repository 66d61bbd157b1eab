"""Draw again the tokens of a span of a file that the model doubts, and print the result.

The span is START:END in the file's own characters (a CRLF counts two, a byte order mark
none; END exclusive). Its tokens whose confidence (the lens: the probability the model keeps
the token) is under --below are re-noised and denoised again; every other token of the span
and all the text around it stay pinned, byte for byte. The printed text keeps the file's line
endings; --in-place writes the best candidate back atomically, as ``infill --in-place`` does.

With --json the record also has ``kept`` and ``renoised`` (the span's tokens, each with its
offsets in the file's characters, its text and its confidence) and, for each candidate,
``runs``: where each redrawn run of tokens landed in that candidate's text, and its new text.
"""

from __future__ import annotations

import math

from dgterm.commands.arguments import add_output_args
from dgterm.engine.args import EngineArgs
from dgterm.engine.params import DEFAULT_REFINE_BELOW


def add_arguments(p):
    p.add_argument("file", help="the file to refine")
    p.add_argument("--span", metavar="START:END",
                   help="the span to refine: offsets in the file's characters (CRLF counts two, a BOM none), "
                        "END exclusive")
    p.add_argument("--below", default=str(DEFAULT_REFINE_BELOW), metavar="P",
                   help="re-noise the span's tokens the model keeps with a probability under P, "
                        "between 0 and 1 (default %(default)s)")
    p.add_argument("--in-place", action="store_true", help="write the best candidate back into the file")
    EngineArgs.add_cli_args(p)
    add_output_args(p)


def run(args) -> int:
    from dgterm.commands.files import in_text, open_file, with_drafts, write_in_place
    from dgterm.commands.infill import parse_span
    from dgterm.commands.output import check_trace_path, drive, emit
    from dgterm.editor import structure
    from dgterm.engine.tasks import check_spans
    from dgterm.engine.tasks.refine import plan_refine, refine
    from dgterm.errors import InputError

    if not args.span:
        raise InputError("No span given; pass --span START:END (character offsets into the file).")
    asked = parse_span(args.span, None)
    if asked.length is not None:
        raise InputError(f"Span '{args.span}' is START:END; a refine keeps the span's tokens, so it takes no LENGTH.")
    try:
        below = float(args.below)
    except ValueError:
        below = math.nan
    if not 0 <= below <= 1:
        raise InputError(f"--below takes a probability between 0 and 1, like 0.1, not '{args.below}'.")
    doc = open_file(args.file, args.in_place, "refine")
    span = in_text(doc, asked)
    check_spans(doc.text, [span])
    if span.start == span.end:
        raise InputError("The span to refine is empty; give START:END with START < END.")
    engine_args = EngineArgs.from_cli_args(args)
    engine_args.check()  # a bad flag is one line before the model loads, not after
    check_trace_path(args.trace, [args.file], engine_args)
    lm = engine_args.load()
    plan = plan_refine(lm, doc.text, span.start, span.end, below)
    task = refine(lm, doc.text, span.start, span.end, engine_args.sampler_params(lm), plan=plan,
                  candidates=engine_args.candidates, check=structure.checker(args.file))
    recorded = {"kind": "infill", "text": doc.text, "spans": [(a, b, None) for a, b in plan.runs], "task": "refine",
                "file": str(args.file), "below": below}
    result = drive(task, args.trace, recorded)
    order = plan.canvas.spans
    filled = [with_drafts(doc, order, c.spans) for c in result.candidates]
    texts = [f.file_text() for f, _ in filled]
    fields, each = None, None
    if args.json:  # read before an in-place write changes the document
        whole = doc.file_text()

        def tokens(which):
            return [_placed(doc, whole, t.start, t.end) | {"confidence": round(t.prob, 6)} for t in which]

        fields = {"span": {"start": asked.start, "end": asked.end}, "below": below, "kept": tokens(plan.kept),
                  "renoised": tokens(plan.renoised)}
        each = [{"runs": [_placed(f, text, a, b) for a, b in ranges]} for (f, ranges), text in zip(filled, texts)]
    if args.in_place:
        write_in_place(doc, args.file, order, result.best.spans, "refine")
    emit(result, args, texts[0], texts=texts, newline=doc.newline, each=each, fields=fields)
    return 0


def _placed(doc, whole: str, start: int, end: int) -> dict:
    """A range of ``doc``'s text in the file's characters (``whole``: its file text), with its text."""
    a, b = doc.to_file_offset(start), doc.to_file_offset(end)
    return {"start": a, "end": b, "text": whole[a:b]}
