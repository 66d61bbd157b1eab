"""Saving, reloading, quitting, crash recovery and files changed on disk: every file
operation goes through the Document core (atomic saves, journal)."""

from __future__ import annotations

import os

from dgterm.editor import ChangedOnDiskError, Document, DocumentError, ReadOnlyFileError
from dgterm.tui.host import Host
from dgterm.tui.keymap import RUN, Mode
from dgterm.tui.screens.confirm import ConfirmScreen
from dgterm.tui.screens.prompt import PromptScreen
from dgterm.tui.syntax import Highlighter, lexer_for
from dgterm.tui.widgets.status import StatusBar

# Textual's TextArea spends ~60 ms per million characters of the cursor's line on every key
# (tab expansion and cell widths over the whole line; docs/reliability.md).
LONGEST_LINE = 1_000_000


def open_document(path: str | None) -> tuple[Document, str | None]:
    """The document for ``path``; a scratch buffer and the reason if it cannot be opened."""
    if path is None:
        return Document.from_text(""), None
    try:
        doc = Document.open(path)
    except DocumentError as e:
        return Document.from_text(""), str(e)
    longest = max(map(len, doc.text.split("\n")))
    if longest > LONGEST_LINE:
        doc.close()
        return Document.from_text(""), (
            f"{path} has a line of {longest:,} characters, more than the {LONGEST_LINE:,} the editor takes (each "
            f"key would take seconds); break the line, or rewrite parts of it with `dgterm infill {path} --span "
            "START:END`.")
    return doc, None


class FileActions(Host):
    disk_warned = False  # the file changed on disk and the user was told
    quit_after_save = False  # the save was asked for by quitting

    def file_name(self) -> str:
        return os.path.basename(self.doc.path) if self.doc.path else "[scratch]"

    def refresh_file(self) -> None:
        doc = self.doc
        flags = (" ●" if doc.dirty else "") + (" [read-only]" if doc.read_only else "") + \
            (" [new]" if doc.is_new and doc.path else "")
        self.query_one(StatusBar).set_file(self.file_name() + flags)
        self.sub_title = self.file_name()

    def action_save(self) -> None:
        if self.doc.path is None:
            self.action_save_as()
            return
        self._save()

    def _save(self, force: bool = False, over_read_only: bool = False) -> None:
        """Save, asking first when the file changed on disk or is read-only (vim's :w!)."""
        try:
            self.doc.save(force=force, over_read_only=over_read_only)
        except ChangedOnDiskError as e:
            self.push_screen(ConfirmScreen("File changed on disk", str(e),
                                           [("overwrite", "Overwrite it"), ("reload", "Reload theirs"),
                                            ("cancel", "Cancel")], focus="cancel"),
                             lambda choice: self._after_conflict(choice, over_read_only))
            return
        except ReadOnlyFileError as e:
            self.push_screen(ConfirmScreen("File is read-only", f"{e} Save over it anyway?",
                                           [("write", "Save over it"), ("cancel", "Cancel")], focus="cancel"),
                             lambda choice: self._save(force, True) if choice == "write" else None)
            return
        except DocumentError as e:
            self.notify(str(e), title="Not saved", severity="error", timeout=10)
            return
        self._saved()

    def _after_conflict(self, choice: str | None, over_read_only: bool) -> None:
        if choice == "overwrite":
            self._save(force=True, over_read_only=over_read_only)
        elif choice == "reload":
            self._reload()

    def _saved(self) -> None:
        self.disk_warned = False
        self.refresh_file()
        self.notify(f"Saved {self.doc.path}.", timeout=3)
        if self.quit_after_save:
            self.finish()

    def action_save_as(self) -> None:
        self.push_screen(PromptScreen("Save as", "File name (relative to the current folder):",
                                      value=self.doc.path or ""), self._save_as)

    def _save_as(self, path: str | None, overwrite: bool = False) -> None:
        if not path:
            self.quit_after_save = False
            return
        path = os.path.abspath(os.path.expanduser(path))
        try:
            self.doc.save_as(path, overwrite=overwrite)
        except DocumentError as e:
            if not overwrite and os.path.isfile(path):
                self.push_screen(ConfirmScreen("Overwrite?", f"'{path}' already exists. Overwrite it?",
                                               [("yes", "Overwrite"), ("cancel", "Cancel")]),
                                 lambda c: self._save_as(path, True) if c == "yes" else None)
            else:
                self.notify(str(e), title="Not saved", severity="error", timeout=10)
            return
        self.editor.highlighter = Highlighter(lexer_for(path, self.doc.text))
        self.editor.sync_from_doc()
        self._saved()

    def action_reload(self) -> None:
        if self.doc.path is None or self.doc.is_new and not os.path.exists(self.doc.path):
            self.notify("There is no file on disk to reload yet; save it first.")
            return
        if self.doc.dirty:
            self.push_screen(ConfirmScreen("Reload?", "Reload the file from disk? Your unsaved edits are replaced "
                                           "(ctrl+z brings them back).", [("yes", "Reload"), ("cancel", "Cancel")]),
                             lambda c: self._reload() if c == "yes" else None)
        else:
            self._reload()

    def _reload(self) -> None:
        try:
            self.doc.reload()
        except DocumentError as e:
            self.notify(str(e), severity="error", timeout=10)
            return
        self.disk_warned = False
        self.editor.read_only = self.doc.read_only
        self.editor.sync_from_doc()
        self.spans_changed()
        self.refresh_file()

    def check_disk(self) -> None:
        """Timer: notice a file changed by someone else. A clean buffer follows it."""
        if self.mode != Mode.EDIT or self.doc.path is None or self.disk_warned:
            return
        try:
            changed = self.doc.changed_on_disk()
        except OSError:
            return
        if not changed:
            return
        if not self.doc.dirty and os.path.exists(self.doc.path):
            self._reload()
            self.notify(f"{self.file_name()} changed on disk and was reloaded (ctrl+z undoes that).")
        else:
            self.disk_warned = True
            self.notify(f"{self.file_name()} changed on disk. F5 reloads it; ctrl+s asks before overwriting.",
                        severity="warning", timeout=12)

    def offer_recovery(self) -> None:
        if self.doc.recovery is None:
            return
        self.push_screen(ConfirmScreen(
            "Recover unsaved changes?",
            f"Unsaved changes to {self.file_name()} from a session that ended unexpectedly were found.",
            [("recover", "Recover them"), ("discard", "Discard them"), ("later", "Decide later")], cancel="later"),
            self._after_recovery)

    def _after_recovery(self, choice: str | None) -> None:
        if choice == "recover":
            try:
                self.doc.recover()
            except DocumentError as e:
                self.notify(str(e), severity="error")
                return
            self.editor.sync_from_doc()
            self.spans_changed()
            self.refresh_file()
            extra = (" A model rewrite was running: its spans are marked again, ctrl+g runs it."
                     if self.doc.recovery_rewrite else "")
            self.notify("Recovered the unsaved changes (ctrl+z undoes that)." + extra)
        elif choice == "discard":
            self.doc.discard_recovery()
            self.notify("Discarded the recovered changes.")

    async def action_quit(self) -> None:
        if self.mode == Mode.REVIEW:
            self.push_screen(ConfirmScreen("Candidates not accepted", "Quit and drop the candidates of the last run? "
                                           "(Cancel, then enter accepts the one shown.)",
                                           [("quit", "Drop them and quit"), ("cancel", "Cancel")], focus="cancel"),
                             lambda choice: self._quit() if choice == "quit" else None)
            return
        self._quit()

    def _quit(self) -> None:
        if self.mode in RUN:
            self.action_cancel()
        if not self.doc.dirty:
            self.finish()
            return
        self.push_screen(ConfirmScreen("Unsaved changes", f"Save the changes to {self.file_name()} before quitting?",
                                       [("save", "Save"), ("discard", "Quit without saving"), ("cancel", "Cancel")]),
                         self._after_quit_question)

    def _after_quit_question(self, choice: str | None) -> None:
        if choice == "save":
            self.quit_after_save = True
            self.action_save()
        elif choice == "discard":
            self.finish(discard=True)

    def finish(self, discard: bool = False) -> None:
        if self.job is not None:
            self.job.cancel.set()  # a run going stops at its next step
        try:
            self.doc.close(discard=discard)
        except OSError:
            pass
        self.exit()
