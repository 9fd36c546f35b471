"""pq.py: the little of libpq the soak driver needs, through ctypes.

Owns one connection per object: connect, run a statement with text
parameters, read the result as text.  No dependency beyond libpq5, which
psql itself needs (python3-psycopg2 is not on every test machine).  A
lost connection is reported as ConnectionLost, an SQL error as SqlError;
the connection string comes from the environment (PGHOST, PGPORT, PGUSER,
PGPASSWORD), as for psql.  Must never print a parameter or a result:
callers decide what reaches the log.
"""
import ctypes
import ctypes.util

_lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
_lib.PQconnectdb.restype = ctypes.c_void_p
_lib.PQconnectdb.argtypes = [ctypes.c_char_p]
_lib.PQstatus.argtypes = [ctypes.c_void_p]
_lib.PQerrorMessage.restype = ctypes.c_char_p
_lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
_lib.PQfinish.argtypes = [ctypes.c_void_p]
_lib.PQexecParams.restype = ctypes.c_void_p
_lib.PQexecParams.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                              ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_int]
_lib.PQresultStatus.argtypes = [ctypes.c_void_p]
_lib.PQresultErrorMessage.restype = ctypes.c_char_p
_lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
_lib.PQresultErrorField.restype = ctypes.c_char_p
_lib.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.PQntuples.argtypes = [ctypes.c_void_p]
_lib.PQnfields.argtypes = [ctypes.c_void_p]
_lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lib.PQgetvalue.restype = ctypes.c_char_p
_lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lib.PQclear.argtypes = [ctypes.c_void_p]
_lib.PQbackendPID.argtypes = [ctypes.c_void_p]
_NOTICE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_lib.PQsetNoticeProcessor.argtypes = [ctypes.c_void_p, _NOTICE, ctypes.c_void_p]
_quiet = _NOTICE(lambda arg, msg: None)     # notices (shutdown warnings) are not ours to print

CONNECTION_OK = 0
PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
PG_DIAG_SQLSTATE = ord("C")


class ConnectionLost(Exception):
    """The server went away (crash restart, shutdown) or never answered."""


class SqlError(Exception):
    def __init__(self, sqlstate, message):
        super().__init__(message)
        self.sqlstate = sqlstate


class Conn:
    def __init__(self, conninfo):
        self.conn = _lib.PQconnectdb(conninfo.encode())
        if not self.conn or _lib.PQstatus(self.conn) != CONNECTION_OK:
            msg = _lib.PQerrorMessage(self.conn).decode(errors="replace") if self.conn else "out of memory"
            self.close()
            raise ConnectionLost(msg.strip())
        self.pid = _lib.PQbackendPID(self.conn)
        _lib.PQsetNoticeProcessor(self.conn, _quiet, None)

    def close(self):
        if self.conn:
            _lib.PQfinish(self.conn)
            self.conn = None

    def execute(self, sql, params=()):
        """Rows of text (None for NULL); raises SqlError or ConnectionLost."""
        if not self.conn:
            raise ConnectionLost("connection closed")
        n = len(params)
        arr = (ctypes.c_char_p * max(n, 1))(*[None if p is None else str(p).encode() for p in params])
        res = _lib.PQexecParams(self.conn, sql.encode(), n, None, arr, None, None, 0)
        try:
            st = _lib.PQresultStatus(res) if res else -1
            if st in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                rows, cols = _lib.PQntuples(res), _lib.PQnfields(res)
                return [tuple(None if _lib.PQgetisnull(res, r, c) else _lib.PQgetvalue(res, r, c).decode()
                              for c in range(cols)) for r in range(rows)]
            if _lib.PQstatus(self.conn) != CONNECTION_OK or not res:
                raise ConnectionLost(_lib.PQerrorMessage(self.conn).decode(errors="replace").strip())
            state = _lib.PQresultErrorField(res, PG_DIAG_SQLSTATE)
            state = state.decode() if state else ""
            # 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now
            msg = _lib.PQresultErrorMessage(res).decode(errors="replace").strip()
            if state.startswith("57P") or state.startswith("08"):
                raise ConnectionLost(msg)
            raise SqlError(state, msg)
        finally:
            if res:
                _lib.PQclear(res)

    def value(self, sql, params=()):
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None
