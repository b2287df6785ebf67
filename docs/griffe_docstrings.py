"""A griffe extension (mkdocs.yml loads it) that renders mrcnn's docstrings
as written.

The docstrings are prose in matterport's manner: one argument a line
(``image: [height, width, 3] in 0..255.``), wrapped lines indented below
it, and a Sphinx role here and there (``:class:`CocoDataset```). Markdown
would run the argument lines together into one paragraph and print the
roles' markup, so, in the text the site renders (never in the source):

* a line that starts an entry (``name: ...``, ``name, other: ...``) at the
  docstring's left margin, below a line of text, starts a new line
  (a Markdown hard break at the end of the line before it);
* ``:class:`X```, ``:func:`X```, ``:meth:`X``` and the like become a
  cross-reference to ``X``, looked up from the object the docstring
  belongs to (mkdocstrings' scoped cross-references): a name that does not
  resolve fails the strict build.
"""

import re

import griffe

ENTRY = re.compile(r"^(?:\(optional\) )?[A-Za-z_][\w.]*(?:, ?[A-Za-z_][\w.]*)*: \S")
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([\w.]+?)(\(\))?`")
FENCE = re.compile(r"^\s*(```|~~~)")


def _as_written(text):
    lines = text.split("\n")
    fenced = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        if fenced or i == 0:
            continue
        if ENTRY.match(line) and lines[i - 1].strip():
            lines[i - 1] = lines[i - 1].rstrip() + "  "
    text = "\n".join(lines)
    return ROLE.sub(lambda m: "[`{}{}`][{}]".format(
        m.group(1), m.group(2) or "", m.group(1)), text)


class AsWritten(griffe.Extension):
    """Rewrites each docstring's text as ``_as_written`` says."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = _as_written(obj.docstring.value)
