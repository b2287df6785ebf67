"""Files fetched over HTTP(S) whole or not at all, and zips unpacked whole.

A download goes to a temporary file beside its destination and is renamed
into place only once complete: every byte the server announced
(Content-Length) arrived and, where we know them, the size and MD5 of the
file are right. An interrupted, truncated or damaged download leaves no
file under the destination name, so the next run downloads again instead
of trusting a partial file forever. The socket has a timeout, so a stalled
server raises instead of hanging.

``extract_zip`` unpacks into a temporary folder beside the destination and
renames what it extracted into place: a folder of the archive appears
whole, or not at all. zipfile checks each member's CRC-32 as it extracts.
"""

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile

from mrcnn import atomic_files

# Seconds without data before a download gives up (per socket operation).
TIMEOUT_S = 60
_CHUNK = 1 << 20

# The first 8 bytes of every HDF5 file (Keras .h5 weights).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class DownloadError(OSError):
    """A download failed or arrived damaged; the destination is unchanged."""


def fetch(url, path, size=None, md5=None, timeout=TIMEOUT_S, verbose=True):
    """Downloads url to path, whole or not at all.

    size: the file's exact size in bytes, if known; md5: its hex MD5, if
        known. The Content-Length the server sends is always checked.
    timeout: seconds a connection or read may stall.
    Raises DownloadError naming the URL (path is then left as it was).
    """
    path = os.fspath(path)
    if verbose:
        print("Downloading {} to {} ...".format(url, path))
    try:
        with atomic_files.replacing(path, suffix=".part") as partial:
            with open(partial, "wb") as out:
                received, digest = _copy(url, out, timeout)
                out.flush()
                os.fsync(out.fileno())
            _check(received, digest, size, md5)
    except (urllib.error.URLError, http.client.HTTPException, OSError,
            ValueError) as error:
        raise DownloadError("could not download {} ({})".format(
            url, error)) from error
    if verbose:
        print("... done ({} bytes)".format(received))


def _copy(url, out, timeout):
    """Streams url into the open file out; returns (bytes, hex MD5).
    Raises DownloadError when fewer bytes arrive than announced."""
    digest = hashlib.md5()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        while True:
            try:
                chunk = response.read(_CHUNK)
            except http.client.IncompleteRead as error:
                received += len(error.partial)
                break
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
    if announced is not None and int(announced) != received:
        raise DownloadError("the connection ended after {} of {} bytes".format(
            received, announced))
    return received, digest.hexdigest()


def _check(received, digest, size, md5):
    """Raises DownloadError when the size or MD5 is not the known one."""
    if size is not None and received != size:
        raise DownloadError("got {} bytes, expected {}".format(received, size))
    if md5 is not None and digest != md5:
        raise DownloadError("MD5 {} is not the published {}".format(
            digest, md5))


def file_md5(path):
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def damaged_hdf5(path, size=None):
    """Why a cached HDF5 file cannot be used, or None when it looks whole.

    Cheap enough for every run: the size (when known) and the HDF5
    signature, not a full checksum. A missing file is "missing".
    """
    if not os.path.isfile(path):
        return "missing"
    actual = os.path.getsize(path)
    if size is not None and actual != size:
        return "{} bytes instead of {}".format(actual, size)
    with open(path, "rb") as f:
        if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            return "not an HDF5 file"
    return None


def extract_zip(zip_path, destination):
    """Extracts a zip into destination, each top-level entry appearing whole.

    Members go to a temporary folder inside destination first (zipfile
    raises BadZipFile on a member whose CRC-32 does not match), then each
    top-level folder absent from destination is renamed into place in one
    step; files, and folders that already exist there, are merged file by
    file with os.replace. An exception removes the temporary folder; a
    killed process leaves it behind under a hidden name (".extract-..."),
    never a half-extracted folder under a real name.
    """
    os.makedirs(destination, exist_ok=True)
    staging = tempfile.mkdtemp(dir=destination, prefix=".extract-")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.infolist():
                archive.extract(member, staging)
        for name in sorted(os.listdir(staging)):
            _move_into(os.path.join(staging, name),
                       os.path.join(destination, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(source, target):
    """Renames source to target; merges into an existing target folder."""
    if os.path.isdir(source) and os.path.isdir(target):
        for name in sorted(os.listdir(source)):
            _move_into(os.path.join(source, name), os.path.join(target, name))
    else:
        os.replace(source, target)
