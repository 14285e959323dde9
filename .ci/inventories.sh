#!/bin/sh
# Debian ships the real intersphinx inventories of Python, gevent and PyMongo.
# Install them where we can (root with apt-get); say so where we cannot.
set -u
want="/usr/share/doc/python3.11/html/objects.inv:python3-doc
/usr/share/doc/python-gevent-doc/html/objects.inv:python-gevent-doc
/usr/share/doc/python-pymongo-doc/html/objects.inv:python-pymongo-doc"
# "flask": also those of Flask's docs' inventories, for bench/bench_xref_real.py
if [ "${1:-}" = flask ]; then
    want="$want
/usr/share/doc/python-werkzeug-doc/html/objects.inv:python-werkzeug-doc
/usr/share/doc/python-click-doc/html/objects.inv:python-click-doc
/usr/share/doc/python-jinja2-doc/html/objects.inv:python-jinja2-doc
/usr/share/doc/python-itsdangerous-doc/html/objects.inv:python-itsdangerous-doc"
fi
missing=""
for pair in $want; do
    [ -f "${pair%%:*}" ] || missing="$missing ${pair#*:}"
done
[ -z "$missing" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's inventories:$missing"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
        || echo "warning: apt-get could not install$missing; the tests on real inventories will be reported as skipped" >&2
else
    echo "note: not root or no apt-get; missing$missing; the tests on real inventories will be reported as skipped" >&2
fi
exit 0
