"""Installed distributions, read from ``*.dist-info`` / ``*.egg-info`` without importlib.metadata.

The one reader of metadata: entry points of the groups lazypatch reads, versions, the
``instruments`` requirements of OpenTelemetry's packages and the top-level module a distribution
provides. ``importlib.metadata`` costs about 20 ms to import, four times lazypatch's whole startup
budget, so this module lists the ``sys.path`` directories itself; the first distribution of a
normalized name on the path wins, as in ``importlib.metadata``.

A scan keeps one record per ``sys.path`` directory (see :mod:`lazypatch._metadata_cache` for the
copy kept across processes): its modification time, the names of the distributions in it, and
what lazypatch needs from those whose ``entry_points.txt`` names one of its groups. A record is
reused while the directory's mtime is unchanged: installers create or remove a directory there to
install, upgrade or uninstall. Entry point files that are rewritten in place (setuptools'
``*.egg-info``, and those lazypatch's groups were read from) are checked by their own mtimes.
"""

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Tuple

    Groups = Dict[str, List[Tuple[str, str]]]  # group -> [(name, "pkg.mod:attr")]

INSTRUMENTORS = "lazypatch.instrumentors"
HOOKS = "lazypatch.hooks"
OTEL_INSTRUMENTORS = "opentelemetry_instrumentor"
OTEL_PRE = "opentelemetry_pre_instrument"
OTEL_POST = "opentelemetry_post_instrument"
GROUPS = (INSTRUMENTORS, HOOKS, OTEL_INSTRUMENTORS, OTEL_PRE, OTEL_POST)

# Import name of a distribution whose top-level package does not say it (namespace packages,
# several top-level names), by normalized distribution name.
KNOWN_MODULES = {
    "grpcio": "grpc",
    "mysql_connector_python": "mysql.connector",
    "mysqlclient": "MySQLdb",
    "protobuf": "google.protobuf",
    "pymssql": "pymssql",
}

# A directory or file modified less than this before it was read may change again within the same
# timestamp tick (FAT has 2 s, HFS+ 1 s, others a clock tick): its record is not trusted later.
RACY_NS = 2_000_000_000
ABSENT = -1  # the "mtime" of a path that cannot be stat'ed: a record of it holds while that lasts
UNTRUSTED = -2  # the mtime recorded for a directory too recently modified: never valid later


def normalize(name: str) -> str:
    """PEP 503 normalization with ``_``, as ``importlib.metadata`` compares distribution names."""
    key = name.lower().replace("-", "_").replace(".", "_")
    while "__" in key:
        key = key.replace("__", "_")
    return key


def requirement_name(requirement: str) -> str:
    """The distribution name at the start of a PEP 508 requirement."""
    for index, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:index]
    return requirement


def read_bytes(path: str) -> "Optional[bytes]":
    """Bytes of a file, or None. ``os.read`` rather than ``open()``: this is on the startup path."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)


class Distribution:
    """An installed distribution: its metadata directory, normalized name and version.

    ``groups`` holds the entry points of lazypatch's groups (group -> [(name, "pkg.mod:attr")]),
    for a distribution that a scan found to have some.
    """

    __slots__ = ("key", "path", "version", "groups", "_record")

    def __init__(
        self,
        key: str,
        path: str,
        version: "Optional[str]",
        groups: "Optional[Groups]" = None,
        record: "Optional[Record]" = None,
    ) -> None:
        self.key = key
        self.path = path
        self.version = version
        self.groups = groups
        self._record = record

    def __repr__(self) -> str:
        return f"<Distribution {self.key} {self.version} at {self.path!r}>"

    def read(self, filename: str) -> "Optional[str]":
        """Text of a metadata file, or None if absent or unreadable."""
        data = self.read_bytes(filename)
        return None if data is None else data.decode("utf-8", "replace")

    def read_bytes(self, filename: str) -> "Optional[bytes]":
        """Bytes of a metadata file, or None."""
        return read_bytes(self.path + os.sep + filename)

    def installed_version(self) -> "Optional[str]":
        """The version: from the directory name, else from METADATA / PKG-INFO."""
        if self.version:
            return self.version
        text = self.read("METADATA") or self.read("PKG-INFO") or ""
        for line in text.splitlines():
            if line.startswith("Version:"):
                return line[8:].strip()
            if not line:
                break
        return None

    def entry_points(self) -> "Groups":
        """Group -> [(name, "pkg.mod:attr")] of lazypatch's groups, from entry_points.txt."""
        if self.groups is not None:
            return self.groups
        return parse_entry_points(self.read_bytes("entry_points.txt"))

    def instruments(self) -> "List[str]":
        """The ``instruments`` / ``instruments-any`` requirements of an OpenTelemetry package."""
        requirements = []
        for line in (self.read("METADATA") or self.read("PKG-INFO") or "").splitlines():
            if not line:
                break
            if line.startswith("Requires-Dist:") and "instruments" in line:
                requirement, _, marker = line[14:].partition(";")
                if "'instruments" in marker or '"instruments' in marker:
                    requirements.append(requirement.strip())
        return requirements

    def import_name(self) -> str:
        """The top-level module it provides: top_level.txt, else RECORD, else its name."""
        known = KNOWN_MODULES.get(self.key)
        if known:
            return known
        record = self._record
        filename = self.path.rpartition(os.sep)[2]
        if record is not None and filename in record.imports:
            return record.imports[filename]
        names = self._top_level_names()
        name = self.key
        for candidate in names:
            if normalize(candidate) == self.key:
                name = candidate
                break
        else:
            public = [candidate for candidate in names if not candidate.startswith("_")]
            if len(public) == 1:
                name = public[0]
        if record is not None:
            record.imports[filename] = name
            record.dirty = True
        return name

    def _top_level_names(self) -> "List[str]":
        text = self.read("top_level.txt")
        if text is not None:
            return [line.strip() for line in text.splitlines() if line.strip()]
        names = []
        for line in (self.read("RECORD") or "").splitlines():
            first, slash, _ = line.partition(",")[0].partition("/")
            if not slash:
                first = first.partition(".")[0] if first.endswith((".py", ".so", ".pyd")) else ""
            elif first.endswith((".dist-info", ".egg-info", ".data")):
                first = ""
            elif first in ("..", "__pycache__"):
                first = ""
            if first and first.isidentifier() and first not in names:
                names.append(first)
        return names


def parse_entry_points(data: "Optional[bytes]") -> "Groups":
    """Group -> [(name, "pkg.mod:attr")] of lazypatch's groups in an entry_points.txt."""
    if not data or (b"lazypatch." not in data and b"opentelemetry_" not in data):
        return {}
    groups: Groups = {}
    group = None
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
        elif group in GROUPS:
            name, sep, value = line.partition("=")
            if sep:
                groups.setdefault(group, []).append((name.strip(), value.partition("[")[0].strip()))
    return groups


def _stem(filename: str) -> "Optional[str]":
    if filename.endswith(".dist-info"):
        return filename[:-10]
    if filename.endswith(".egg-info"):
        return filename[:-9]
    return None


def _mtime(path: str) -> int:
    """``st_mtime_ns`` of ``path``; :data:`ABSENT` if it cannot be read."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return ABSENT


class Record:
    """What one ``sys.path`` directory holds, as lazypatch needs it.

    ``names``: ``"\\nkey\\tfilename"`` for each distribution, in listing order (one string, so that
    a cached record loads and is searched without a Python object per distribution).
    ``found``: ``(filename, groups)`` of those with entry points in lazypatch's groups.
    ``files``: ``(path, mtime_ns)`` of entry point files to check besides the directory.
    ``imports``: top-level module by filename, filled as :meth:`Distribution.import_name` reads it.
    ``mtime``: the directory's mtime when listed; :data:`ABSENT` if it did not exist (such as
    the ``pythonXY.zip`` entry of most installations), :data:`UNTRUSTED` when too recent.
    """

    __slots__ = ("directory", "mtime", "names", "found", "files", "imports", "dirty")

    def __init__(
        self,
        directory: str,
        mtime: int,
        names: str,
        found: "Tuple[Tuple[str, Groups], ...]",
        files: "Tuple[Tuple[str, int], ...]",
        imports: "Dict[str, str]",
    ) -> None:
        self.directory = directory
        self.mtime = mtime
        self.names = names
        self.found = found
        self.files = files
        self.imports = imports
        self.dirty = False

    def as_tuple(self) -> "Tuple[Any, ...]":
        """The marshal-able form, for :mod:`lazypatch._metadata_cache`."""
        return (self.mtime, self.names, self.found, self.files, self.imports)

    @classmethod
    def from_tuple(cls, directory: str, data: "Tuple[Any, ...]") -> "Record":
        mtime, names, found, files, imports = data
        return cls(directory, mtime, names, found, files, imports)

    def valid(self) -> bool:
        """Whether the directory, and each entry point file checked, are as when read."""
        if self.mtime == UNTRUSTED or _mtime(self.directory) != self.mtime:
            return False
        for path, mtime in self.files:
            if _mtime(path) != mtime:
                return False
        return True

    def filename_of(self, key: str) -> "Optional[str]":
        """The first distribution directory of normalized name ``key`` here, or None."""
        names = self.names
        start = names.find("\n" + key + "\t")
        if start < 0:
            return None
        start += len(key) + 2
        end = names.find("\n", start)
        return names[start:] if end < 0 else names[start:end]


def read_directory(directory: str) -> Record:
    """List one ``sys.path`` directory: every distribution, and lazypatch's entry points."""
    now = time.time_ns()
    mtime = _mtime(directory)
    try:
        filenames = os.listdir(directory)
    except OSError:
        filenames = []
    lines = []
    found = []
    files = []
    for filename in filenames:
        stem = _stem(filename)
        if stem is None:
            continue
        dist_name, _, rest = stem.partition("-")
        key = normalize(dist_name)
        lines.append(f"\n{key}\t{filename}")
        entry_points = directory + os.sep + filename + os.sep + "entry_points.txt"
        data = read_bytes(entry_points)
        groups = parse_entry_points(data)
        if groups or (data is not None and filename.endswith(".egg-info")):
            files.append((entry_points, _mtime(entry_points)))
        elif filename.endswith(".egg-info"):
            files.append((entry_points, ABSENT))
        if groups:
            found.append((filename, groups))
    racy = mtime > now - RACY_NS or any(m > now - RACY_NS for _, m in files)
    mtime = UNTRUSTED if racy else mtime
    return Record(directory, mtime, "".join(lines), tuple(found), tuple(files), {})


def _version_of(filename: str) -> str:
    stem = _stem(filename) or ""
    return stem.partition("-")[2].partition("-")[0]


class Scan:
    """The distributions on one ``sys.path``, one :class:`Record` per directory, in path order."""

    def __init__(self, records: "List[Record]", reused: "List[str]") -> None:
        self.records = records
        self.reused = reused  # the directories not listed again (their records were still valid)

    def _dist(
        self, record: Record, filename: str, groups: "Optional[Groups]" = None
    ) -> Distribution:
        stem = _stem(filename) or filename
        key = normalize(stem.partition("-")[0])
        path = record.directory + os.sep + filename
        return Distribution(key, path, _version_of(filename), groups, record)

    def with_entry_points(self) -> "List[Distribution]":
        """The distributions with entry points in lazypatch's groups, first of each name only."""
        result = []
        for index, record in enumerate(self.records):
            for filename, groups in record.found:
                dist = self._dist(record, filename, groups)
                if record.filename_of(dist.key) != filename:
                    continue
                if any(r.filename_of(dist.key) for r in self.records[:index]):
                    continue
                result.append(dist)
        return result

    def find(self, name: str) -> "Optional[Distribution]":
        """The installed distribution of that name that wins on the path, or None."""
        key = normalize(name)
        for record in self.records:
            filename = record.filename_of(key)
            if filename is not None:
                return self._dist(record, filename)
        return None

    def all(self) -> "Dict[str, Distribution]":
        """Normalized name -> :class:`Distribution`, every distribution on the path; first wins."""
        found = {}
        for record in self.records:
            for line in record.names.split("\n")[1:]:
                key, _, filename = line.partition("\t")
                if key not in found:
                    found[key] = self._dist(record, filename)
        return found


def directories(path: "Optional[Iterable[object]]" = None) -> "List[str]":
    """The absolute directories of ``path`` (default ``sys.path``), in order, without repeats."""
    cwd = None
    result = []
    for entry in sys.path if path is None else path:
        if type(entry) is not str:
            continue
        if not os.path.isabs(entry):
            if cwd is None:
                try:
                    cwd = os.getcwd()
                except OSError:
                    continue
            entry = os.path.join(cwd, entry) if entry else cwd
        if entry not in result:
            result.append(entry)
    return result


_memo: "Dict[str, Record]" = {}  # this process's records, revalidated at each scan


def scan(path: "Optional[Iterable[object]]" = None, cache_dir: "Optional[str]" = None) -> Scan:
    """Read the distributions on ``path`` (default ``sys.path``).

    Records of this process and, with ``cache_dir``, of earlier processes are reused while valid;
    the others are read again, and the cache rewritten if one of those can be trusted later (a
    directory modified a moment ago, such as an application's own that it writes files to, is
    listed again at the next start anyway: rewriting the cache for it would be wasted).
    """
    wanted = directories(path)
    cached = {}
    if cache_dir:
        from . import _metadata_cache

        cached = _metadata_cache.load(cache_dir)
    records = []
    reused = []
    changed = False
    for directory in wanted:
        record = _memo.get(directory)
        if record is None and directory in cached:
            try:
                record = Record.from_tuple(directory, cached[directory])
            except (TypeError, ValueError):
                record = None
        if record is not None and record.valid():
            reused.append(directory)
        else:
            record = read_directory(directory)
            changed = changed or record.mtime != UNTRUSTED
        _memo[directory] = record
        records.append(record)
    result = Scan(records, reused)
    if cache_dir and changed:
        save(result, cache_dir, cached)
    return result


def save(
    result: Scan, cache_dir: str, cached: "Optional[Dict[str, Tuple[Any, ...]]]" = None
) -> None:
    """Write the records of ``result`` (with those of other paths in ``cached``) to the cache."""
    from . import _metadata_cache

    current = {record.directory for record in result.records}
    records = {d: r for d, r in (cached or {}).items() if d not in current and os.path.isdir(d)}
    for record in result.records:
        record.dirty = False
        records[record.directory] = record.as_tuple()
    _metadata_cache.store(cache_dir, records)


def save_if_changed(result: Scan, cache_dir: "Optional[str]") -> None:
    """Rewrite the cache when reading top-level modules added to a record of ``result``."""
    if cache_dir and any(record.dirty for record in result.records):
        from . import _metadata_cache

        save(result, cache_dir, _metadata_cache.load(cache_dir))


def distributions(path: "Optional[Iterable[object]]" = None) -> "Dict[str, Distribution]":
    """Normalized name -> :class:`Distribution` on ``path`` (default ``sys.path``); first wins."""
    return scan(path).all()


def version(name: str) -> "Optional[str]":
    """The installed version of distribution ``name`` on ``sys.path``, or None if not installed.

    Reuses this process's scan (directories whose mtime is unchanged are not listed again).
    """
    dist = scan().find(name)
    return None if dist is None else dist.installed_version()
