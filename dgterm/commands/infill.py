"""Rewrite spans of a file from both sides of their context and print the result.

Spans are START:END character offsets into the file's text (newlines counted as one
character, end exclusive), or START:END:LENGTH to ask for LENGTH tokens; a zero-length
span START:START:LENGTH inserts. Overlapping spans are refused. With --in-place the
file is rewritten atomically in its own encoding and newline style.

For a file of a kind dgterm can parse (Python, JSON, TOML, XML/SVG, HTML, YAML with
PyYAML) each candidate is checked in the file and valid ones rank first;
--require-valid keeps drawing candidates until one is valid, up to a limit.
"""

from __future__ import annotations

import sys

from dgterm.cli import add_model_args, add_output_args, add_sampler_args, whole

REQUIRE_VALID_LIMIT = 16


def add_arguments(p):
    p.add_argument("file", help="the file to rewrite")
    p.add_argument("--span", action="append", default=[], metavar="START:END[:LENGTH]",
                   help="a span to rewrite: character offsets into the file, END exclusive (repeat for more spans)")
    p.add_argument("--length", type=int, help="tokens wanted for every span without its own LENGTH")
    p.add_argument("--lengths", help="length search for one span: comma-separated token lengths, ranked")
    p.add_argument("--in-place", action="store_true", help="write the best candidate back into the file")
    p.add_argument("--require-valid", nargs="?", type=whole(1), const=REQUIRE_VALID_LIMIT, metavar="LIMIT",
                   help="draw candidates until one leaves the file valid, at most LIMIT in all "
                        f"(default {REQUIRE_VALID_LIMIT}); none valid: exit 1 and the file is not written")
    add_model_args(p)
    add_sampler_args(p)
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
    from dgterm.cli import load_model, sampler_params
    from dgterm.commands.common import check_trace_path, drive, emit
    from dgterm.editor import ChangedOnDiskError, Document, DocumentError, structure
    from dgterm.engine import tasks
    from dgterm.errors import InputError

    if not args.span:
        raise InputError("No span given; pass --span START:END (character offsets into the file).")
    spans = [parse_span(s, args.length) for s in args.span]
    try:
        lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else None
    except ValueError:
        raise InputError("--lengths takes comma-separated whole numbers, like 4,8,16.") from None
    try:
        doc = Document.open(args.file)
    except DocumentError as e:
        raise InputError(str(e)) from None
    if doc.is_new:
        raise InputError(f"{args.file} does not exist; give an existing file.")
    if not doc.text:
        raise InputError(f"{args.file} is empty; there is nothing to infill around.")
    if args.in_place and doc.read_only:
        raise InputError(f"{doc.warning.rstrip('.')}; or drop --in-place.")
    if doc.warning:
        print(f"dgterm: note: {doc.warning}", file=sys.stderr)
    tasks.check_spans(doc.text, spans)  # range and overlap, before loading a model
    check_trace_path(args.trace)
    check = structure.checker(args.file)
    if args.require_valid and check is None:
        raise InputError(f"--require-valid needs a file dgterm can parse ({', '.join(structure.NAMES)}); "
                         f"{args.file} is not one of those kinds.")
    lm = load_model(args)

    def start(params):
        return tasks.infill(lm, doc.text, spans, params, candidates=args.candidates, lengths=lengths, check=check)

    params = sampler_params(args, lm)
    task = tasks.UntilValid(start, params, args.candidates, args.require_valid) if args.require_valid else start(params)
    header = {"task": "infill", "file": str(args.file), "text": doc.text,
              "spans": [[s.start, s.end, s.length] for s in spans]}
    result = drive(task, lm, args, header)
    best = result.best
    given = [{"start": s.start, "end": s.end, "length": s.length, "text": doc.text[s.start : s.end]} for s in spans]
    if args.require_valid and not task.found:
        then = "the file is left as it is" if args.in_place else "the likeliest is shown"
        print(f"dgterm: none of the {task.drawn} candidates leaves {args.file} valid (the likeliest: "
              f"{best.reason}); {then}.", file=sys.stderr)
        emit(result, args, best.text, given)
        return 1
    if args.in_place:
        marked = [doc.add_span(s.start, s.end) for s in sorted(spans, key=lambda s: s.start)]
        doc.apply_rewrite(dict(zip(marked, best.spans)))
        try:
            doc.save()
        except ChangedOnDiskError:
            doc.close(discard=True)
            raise InputError(f"{args.file} changed on disk during the run, so it was left as it is; "
                             "run the infill again.") from None
        except DocumentError as e:
            doc.close(discard=True)
            raise InputError(str(e)) from None
        doc.close()
    emit(result, args, best.text, given)
    return 0
