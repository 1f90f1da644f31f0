#!/usr/bin/env bash
# win/installer - installer/awqd.nsi built with makensis, installed silently (/S) into the wine
# prefix: the files in Program Files\awqd (programs, libawq headers, libraries, a libawq.pc for
# that folder), the default %PROGRAMDATA%\awqd\awqd.ini, the Start-menu entries, the service
# registered and starting with those settings; the installed awq.exe --version and awqd.exe
# --check-config; then the uninstaller run silently: the running service stopped and removed,
# the files gone, the settings kept; a second round with
# /REMOVESETTINGS removes them too. Run by scripts/windows-test.sh (AWQ_WIN_BIN, AWQ_SRC).
set -uo pipefail
B=${AWQ_WIN_BIN:?}
SRC=${AWQ_SRC:?}
command -v makensis >/dev/null || { echo "SKIP: makensis (package nsis) is not installed"; exit 77; }
W=wine
[ -x /usr/lib/wine/wine64 ] && W=/usr/lib/wine/wine64
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
T=$(mktemp -d /tmp/awq-win-inst.XXXXXX)
trap 'rm -rf "$T"' EXIT
# The uninstaller runs in place (and can be waited for) only with _?=DIR as the raw end of its
# command line; wine would quote an argument with a blank, so a batch file passes it unquoted.
uninstall() {
  printf '@"C:\\Program Files\\awqd\\uninstall.exe" /S %s _?=C:\\Program Files\\awqd\r\n' "$*" >"$T/un.bat"
  wine cmd /c "Z:$T/un.bat" >/dev/null 2>&1
}
svc_state() { $W sc query awqd 2>/dev/null | tr -d '\r' | sed -n 's/.*STATE *: *[0-9] *//p'; }

SETUP=$B/../awqd-setup.exe
makensis -V2 -DFAST_COMPRESSION -DBINDIR="$B" -DAWQ_LIBDIR="$B/../lib" -DSRCDIR="$SRC" -DOUTFILE="$SETUP" \
  "$SRC/installer/awqd.nsi" >/dev/null || { echo "FAIL makensis"; exit 1; }
ok "makensis built $(basename "$SETUP")"

C=$WINEPREFIX/drive_c
I="$C/Program Files/awqd"
PD=$(wine cmd /c 'echo %PROGRAMDATA%' 2>/dev/null | tr -d '\r')   # C:\ProgramData
PDU=$C/${PD#C:\\}
SM=$(find "$C" -maxdepth 6 -type d -path '*Start Menu/Programs' 2>/dev/null | head -n1)
# a clean slate: no earlier install, service or settings
[ -f "$I/uninstall.exe" ] && uninstall /REMOVESETTINGS
rm -rf "$I" "$PDU/awqd"

wine "$SETUP" /S; rc=$?
check "silent install exits 0" '[ $rc -eq 0 ]'
missing=""
for f in awqd.exe awq.exe awq-tray.exe awq-run.exe awq-mkmodel.exe libawq.dll uninstall.exe include/awq.h \
  include/awq_err.h lib/libawq.a lib/libawq.dll.a lib/pkgconfig/libawq.pc; do
  [ -f "$I/$f" ] || missing="$missing $f"
done
check "every file is in Program Files\\awqd${missing:+ (missing:$missing)}" '[ -z "$missing" ]'
check "libawq.pc names the install folder" 'grep -q "^prefix=C:\\\\Program Files\\\\awqd" "$I/lib/pkgconfig/libawq.pc"'
check "default settings written to %PROGRAMDATA%\\awqd\\awqd.ini" 'cmp -s "$PDU/awqd/awqd.ini" "$SRC/installer/awqd.ini"'
check "Start-menu entries" '[ -n "$SM" ] && [ -f "$SM/awqd/awq tray.lnk" ] && [ -f "$SM/awqd/Uninstall awqd.lnk" ]'
v=$(wine "$I/awq.exe" --version 2>&1 | tr -d '\r')
check "installed awq.exe --version" 'grep -q "^awq 0\\." <<<"$v"'
cc=$(wine "$I/awqd.exe" --check-config 2>&1 | tr -d '\r'); rc=$?
check "installed awqd.exe --check-config finds the installed settings" \
  '[ $rc -eq 0 ] && grep -qiF "# settings: $PD\\awqd\\awqd.ini" <<<"$cc" && grep -q "^socket_group = S-1-5-4" <<<"$cc"'
check "the service section registered the service (STOPPED, demand start)" '[ "$(svc_state)" = STOPPED ]'
$W net start awqd >/dev/null 2>&1
for _ in $(seq 1 300); do [ "$(svc_state)" = RUNNING ] && break; sleep 0.1; done
st=$(wine "$I/awq.exe" status 2>&1 | tr -d '\r')
check "the installed service starts with the default settings and answers on \\\\.\\pipe\\awqd" \
  '[ "$(svc_state)" = RUNNING ] && grep -q "^loaded: false" <<<"$st" && grep -qF "socket: \\\\.\\pipe\\awqd" <<<"$st"'

# an operator's change must survive the uninstall
echo "; my note" >>"$PDU/awqd/awqd.ini"
uninstall; rc=$?
check "silent uninstall exits 0" '[ $rc -eq 0 ]'
left=$(cd "$I" 2>/dev/null && find . -type f ! -name uninstall.exe | head -3)
check "program files removed${left:+ (left: $left)}" '[ -z "$left" ]'
check "the running service was stopped and removed" '[ -z "$(svc_state)" ] && ! wine "$B/awq.exe" status >/dev/null 2>&1'
check "Start-menu entries removed" '[ ! -e "$SM/awqd" ]'
check "settings kept (with the operator's change)" 'grep -q "; my note" "$PDU/awqd/awqd.ini"'
# _?= leaves uninstall.exe itself behind (it ran from there)
rm -f "$I/uninstall.exe"
rmdir "$I" 2>/dev/null

wine "$SETUP" /S
check "a reinstall keeps the existing settings file" 'grep -q "; my note" "$PDU/awqd/awqd.ini"'
uninstall /REMOVESETTINGS
check "/REMOVESETTINGS removes %PROGRAMDATA%\\awqd" '[ ! -e "$PDU/awqd/awqd.ini" ]'
rm -rf "$I"
echo "win/installer: $fails failed"
[ "$fails" = 0 ]
