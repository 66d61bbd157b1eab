"""Rewrite spans of a file from both sides of their context and print the result.

Spans are START:END offsets in the file's own characters (a CRLF line ending counts two,
a byte order mark none; END exclusive), or START:END:LENGTH to ask for LENGTH tokens; a
zero-length span START:START:LENGTH inserts. Overlapping spans are refused. The printed
text keeps the file's line endings. With --in-place the file is rewritten atomically in
its own encoding and newline style.

For a file of a kind dgterm can parse (Python, JSON, TOML, XML/SVG, HTML, YAML with
PyYAML) each candidate is checked in the file and valid ones rank first;
--require-valid keeps drawing candidates until one is valid, up to a limit.

With --json each candidate also has ``tokens``: per span (in the order given) the tokens of
its new text as the model reads them, each with its offsets in the new file's characters and
the model's confidence in it (the lens: the probability it keeps that token).
"""

from __future__ import annotations

import sys

from dgterm.commands.arguments import add_output_args, whole
from dgterm.engine.args import EngineArgs

REQUIRE_VALID_LIMIT = 16


def add_arguments(p):
    p.add_argument("file", help="the file to rewrite")
    p.add_argument("--span", action="append", default=[], metavar="START:END[:LENGTH]",
                   help="a span to rewrite: offsets in the file's characters (CRLF counts two, a BOM none), "
                        "END exclusive (repeat for more spans)")
    p.add_argument("--length", type=int, help="tokens wanted for every span without its own LENGTH")
    p.add_argument("--lengths", help="length search for one span: comma-separated token lengths, ranked")
    p.add_argument("--in-place", action="store_true", help="write the best candidate back into the file")
    p.add_argument("--require-valid", nargs="?", type=whole(1), const=REQUIRE_VALID_LIMIT, metavar="LIMIT",
                   help="draw candidates until one leaves the file valid, at most LIMIT in all "
                        f"(default {REQUIRE_VALID_LIMIT}); none valid: exit 1 and the file is not written")
    EngineArgs.add_cli_args(p)
    add_output_args(p)


def parse_span(text: str, default_length: int | None):
    from dgterm.engine.tasks import SpanRequest
    from dgterm.errors import InputError

    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        start, end = int(parts[0]), int(parts[1])
        length = int(parts[2]) if len(parts) == 3 else default_length
    except ValueError:
        raise InputError(f"Span '{text}' is not START:END or START:END:LENGTH with whole numbers.") from None
    return SpanRequest(start, end, length)


def run(args) -> int:
    from dgterm.commands.files import in_text, open_file, sure_tokens, with_drafts, write_in_place
    from dgterm.commands.output import check_trace_path, drive, emit, note_what_it_lacks
    from dgterm.editor import structure
    from dgterm.engine import tasks
    from dgterm.engine.tasks.until_valid import UntilValid, until_valid
    from dgterm.errors import InputError

    if not args.span:
        raise InputError("No span given; pass --span START:END (character offsets into the file).")
    spans = [parse_span(s, args.length) for s in args.span]
    try:
        lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else None
    except ValueError:
        raise InputError("--lengths takes comma-separated whole numbers, like 4,8,16.") from None
    doc = open_file(args.file, args.in_place, "infill around")
    asked, spans = spans, [in_text(doc, s) for s in spans]
    tasks.check_spans(doc.text, spans)  # range and overlap, before loading a model
    engine_args = EngineArgs.from_cli_args(args)
    engine_args.check()  # a bad flag is one line before the model loads, not after
    check_trace_path(args.trace, [args.file], engine_args)
    check = structure.checker(args.file)
    if args.require_valid and check is None:
        raise InputError(f"--require-valid needs a file dgterm can parse ({', '.join(structure.NAMES)}); "
                         f"{args.file} is not one of those kinds.")
    lm = engine_args.load()
    note_what_it_lacks(lm)

    def start(params):
        return tasks.infill(lm, doc.text, spans, params, candidates=engine_args.candidates, lengths=lengths,
                            check=check)

    task = until_valid(start, engine_args.sampler_params(lm), engine_args.candidates, args.require_valid)
    order = sorted(spans, key=lambda s: (s.start, s.end))  # document order: the engine fills them so
    recorded = {"kind": "search" if lengths else "infill", "text": doc.text,
                "spans": [(s.start, s.end, s.length) for s in order], "task": "infill", "file": str(args.file)}
    result = drive(task, args.trace, recorded)
    best = result.best
    filled = [with_drafts(doc, order, c.spans) for c in result.candidates]
    texts = [f.file_text() for f, _ in filled]
    whole_file = doc.file_text()
    given = [{"start": s.start, "end": s.end, "length": s.length, "text": whole_file[s.start : s.end]} for s in asked]
    each = [{"tokens": _as_given(spans, sure_tokens(lm, f, ranges))} for f, ranges in filled] if args.json else None
    if isinstance(task, UntilValid) and not task.found:
        then = "the file is left as it is" if args.in_place else "the likeliest is shown"
        print(f"dgterm: none of the {task.drawn} candidates leaves {args.file} valid (the likeliest: "
              f"{best.reason}); {then}.", file=sys.stderr)
        emit(result, args, texts[0], texts=texts, newline=doc.newline, spans=given, each=each)
        return 1
    if isinstance(task, UntilValid):
        rounds = f"{task.round + 1} round{'s' if task.round else ''}"
        print(f"dgterm: a valid candidate after {rounds} ({task.drawn} candidates drawn).", file=sys.stderr)
    if args.in_place:
        write_in_place(doc, args.file, order, best.spans, "infill")
    emit(result, args, texts[0], texts=texts, newline=doc.newline, spans=given, each=each)
    return 0


def _as_given(spans, in_order: list) -> list:
    """Items of the spans in document order (as the engine fills them) put in the order the spans were given."""
    given = [None] * len(spans)
    for k, i in enumerate(sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end))):
        given[i] = in_order[k]
    return given
