"""mkdocs hooks of the API reference site (mkdocs.yml names this file).

* The pages that live outside ``docs/`` join the site, read in place (no
  copy to keep in step): the README, CONTRIBUTING.md and
  benchmarks/README.md under the names of ``SITE_PAGES``, the notebooks
  of ``NOTEBOOKS`` at their repository paths (mkdocs-jupyter renders them
  as saved, without running them), and the PNGs of ``FIGURES``.
* Their relative links, written for the repository's layout
  (``docs/troubleshooting.md`` from the README), are pointed at the site's
  pages; a link to a file the site lacks stays as it is, and the strict
  build reports it.
* A face's page (``<!-- re-exports: mrcnn.utils -->``) gets the list of
  the names it re-exports, each linked to its reference where it lives.
"""

import os
import posixpath
import re

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# repository path -> page of the site
SITE_PAGES = {
    "README.md": "index.md",
    "CONTRIBUTING.md": "contributing.md",
    "benchmarks/README.md": "benchmarks.md",
}
# Every notebook of samples/: the site shows them at their repository path
# (mkdocs-jupyter's pages need a file under the File's src_dir).
NOTEBOOKS = sorted(
    os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
    for folder, _, names in os.walk(os.path.join(ROOT, "samples"))
    for name in names
    if name.endswith(".ipynb") and ".ipynb_checkpoints" not in folder)
# The benchmark figures the README shows: the site serves them at their
# repository path.
FIGURES = sorted(
    "benchmarks/figures/" + name
    for name in os.listdir(os.path.join(ROOT, "benchmarks", "figures"))
    if name.endswith(".png"))
# repository path -> page of the site, for the links between them
LINK_TARGETS = dict(SITE_PAGES, **{path: path for path in NOTEBOOKS},
                    **{path: path for path in FIGURES},
                    **{"docs/troubleshooting.md": "troubleshooting.md"})
SOURCE_OF = {page: path for path, page in SITE_PAGES.items()}

# [text](target) and [text](target "title"); images too
LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
REEXPORTS = re.compile(r"<!-- re-exports: ([\w.]+) -->")


@event_priority(100)  # before mkdocs-jupyter's on_files wraps notebooks
def on_files(files, config):
    for path, page in SITE_PAGES.items():
        files.append(File.generated(config, page,
                                    abs_src_path=os.path.join(ROOT, path)))
    for path in NOTEBOOKS + FIGURES:
        files.append(File(path, src_dir=ROOT, dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


def _site_link(target, source_path, page_uri):
    """The site's link for a link written in the repository file
    source_path, or None when it is not a link to a file of the site."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path, _, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join(
        posixpath.dirname(source_path), path))
    page = LINK_TARGETS.get(repo_path)
    if page is None:
        return None
    link = posixpath.relpath(page, posixpath.dirname(page_uri) or ".")
    return link + ("#" + anchor if anchor else "")


def on_page_markdown(markdown, page, config, files):
    source_path = SOURCE_OF.get(page.file.src_uri)
    if source_path is not None:
        def relink(match):
            link = _site_link(match.group(2), source_path, page.file.src_uri)
            return match.group(0) if link is None else (
                match.group(1) + link + match.group(3))
        markdown = LINK.sub(relink, markdown)
    return REEXPORTS.sub(lambda m: _reexports(m.group(1)), markdown)


def _reexports(module_path):
    """A markdown list of the public names module_path imports from
    elsewhere in mrcnn, each linked to the reference of its definition."""
    import griffe

    module = griffe.load(module_path, search_paths=[ROOT],
                         resolve_aliases=False)
    rows = []
    for name, member in module.members.items():
        if name.startswith("_") or not member.is_alias:
            continue
        target = member.target_path
        if (not target.startswith("mrcnn.") or _is_module(target)
                or target.split(".")[-1].startswith("_")):
            continue  # modules the face uses, private helpers
        # an anchor of the face's name (mrcnn.utils.Dataset), so that a
        # cross-reference to it resolves, then the link to the definition
        anchor = "[](){{#{}.{}}}".format(module_path, name)
        rows.append("* {}[`{}`][{}] from `{}`".format(
            anchor, name, target, target.rsplit(".", 1)[0]))
    if not rows:
        return ""
    return ("## Re-exported names\n\n`{}` also gives these names, "
            "defined elsewhere in the package:\n\n{}\n".format(
                module_path, "\n".join(rows)))


def _is_module(path):
    relative = path.replace(".", os.sep)
    return (os.path.isdir(os.path.join(ROOT, relative))
            or os.path.isfile(os.path.join(ROOT, relative + ".py")))
