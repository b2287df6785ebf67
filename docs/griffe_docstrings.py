"""A griffe extension (mkdocs.yml loads it) that renders mrcnn's docstrings
as written.

The docstrings are prose in matterport's manner: one argument a line
(``image: [height, width, 3] in 0..255.``), wrapped lines indented below
it, and a Sphinx role here and there (``:class:`CocoDataset```). Markdown
would run the argument lines together into one paragraph and print the
roles' markup, so, in the text the site renders (never in the source):

* a line that starts an entry (``name: ...``, ``name, other: ...``),
  below a line of text and outside code, starts a new line (a Markdown
  hard break at the end of the line before it); the wrapped lines of an
  entry still join it;
* an attribute without a docstring takes the comment block above it, as
  ``Config``'s values are documented;
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
    fenced = code = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        before = lines[i - 1] if i else ""
        # an indented block after a blank line is code, up to the margin
        if line.startswith("    ") and not before.strip():
            code = True
        elif line.strip() and not line.startswith("    "):
            code = False
        if fenced or code or not before.strip():
            continue
        if ENTRY.match(line.lstrip()):
            lines[i - 1] = before.rstrip() + "  "
    text = "\n".join(lines)
    return ROLE.sub(lambda m: "[`{}{}`][{}]".format(
        m.group(1), m.group(2) or "", m.group(1)), text)


def _comment_above(attr):
    """The comment block written above an attribute without a docstring
    (``Config``'s values are documented so): the ``#`` lines just above
    it, or above the assignments grouped with it (no blank line between),
    as ``STEPS_PER_EPOCH`` and ``VALIDATION_STEPS`` share one."""
    try:
        lines = attr.lines_collection[attr.filepath]
    except (KeyError, TypeError):
        return None
    if lines[attr.lineno - 1].lstrip().startswith("self."):
        return None  # set in a method: comments there are about the code
    index = attr.lineno - 2  # the line above, 0-based
    while index >= 0 and lines[index].strip() and not lines[index].lstrip().startswith("#"):
        index -= 1
    comment = []
    while index >= 0 and lines[index].lstrip().startswith("#"):
        comment.insert(0, lines[index].strip()[1:].strip())
        index -= 1
    return "\n".join(comment) or None


class AsWritten(griffe.Extension):
    """Rewrites each docstring's text as ``_as_written`` says; an attribute
    without a docstring takes the comment above it."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is None and obj.is_attribute and obj.lineno:
            comment = _comment_above(obj)
            if comment:
                obj.docstring = griffe.Docstring(
                    comment, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = _as_written(obj.docstring.value)
