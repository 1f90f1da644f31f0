; awqd.nsi - the Windows installer for awqd (NSIS 3, Unicode, 64-bit stub).
;
; Build (scripts/windows-test.sh does this after the mingw build):
;   makensis -DBINDIR=build-win/bin -DAWQ_LIBDIR=build-win/lib -DSRCDIR=. -DOUTFILE=build-win/awqd-setup.exe \
;            -DVERSION=0.1.0 [-DFAST_COMPRESSION] installer/awqd.nsi
;
; Installs into $PROGRAMFILES64\awqd: the programs (awqd, awq, awq-tray, awq-run, awq-mkmodel),
; libawq (awq.dll, include\awq.h + awq_err.h, lib\libawq.a + libawq.dll.a, lib\pkgconfig\libawq.pc
; written for the install folder); a Start-menu folder; %PROGRAMDATA%\awqd\awqd.ini with the
; defaults of installer\awqd.ini unless a settings file is there already. Optional sections:
; the Windows service (on by default: awqd.exe --install-service) and starting the tray at logon
; (HKCU Run key). Silent: awqd-setup.exe /S [/D=C:\other\folder].
;
; The uninstaller stops and removes the service (awqd.exe --uninstall-service asks the service
; manager to stop it, waits for the drain, then deletes it), removes the programs, the Start-menu
; entries and the Run key, and keeps the settings and logs in %PROGRAMDATA%\awqd unless the
; "Settings and logs" box is ticked or, silently, /REMOVESETTINGS is given:
;   "C:\Program Files\awqd\uninstall.exe" /S /REMOVESETTINGS _?=C:\Program Files\awqd
; (_?= makes it run in place, so the caller can wait for it; without it the uninstaller copies
; itself to %TEMP% and returns at once.)

Unicode true
Target amd64-unicode   ; the default x86 stub would need 32-bit wine in CI, and the programs are 64-bit
!ifdef FAST_COMPRESSION
  SetCompressor zlib   ; CI: a third of the build time, the size does not matter there
!else
  SetCompressor /SOLID lzma
!endif
RequestExecutionLevel admin

!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef BINDIR
  !error "pass -DBINDIR=<the Windows build's bin folder>"
!endif
!ifndef AWQ_LIBDIR
  !define AWQ_LIBDIR "${BINDIR}/../lib"
!endif
!ifndef SRCDIR
  !define SRCDIR ".."
!endif
!ifndef OUTFILE
  !define OUTFILE "awqd-setup.exe"
!endif

!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\awqd"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"
!include "Sections.nsh"
!include "x64.nsh"

Name "awqd ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\awqd"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
ShowInstDetails show
ShowUninstDetails show

!define MUI_COMPONENTSPAGE_SMALLDESC
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; ------------------------------------------------------------------ install ----

Function .onInit
  ; 64-bit programs: refuse a 32-bit Windows, and see the 64-bit registry and Program Files
  ${IfNot} ${RunningX64}
    MessageBox MB_OK|MB_ICONSTOP "awqd needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
FunctionEnd

Section "awqd (required)" SecCore
  SectionIn RO
  SetShellVarContext all

  ; an upgrade over a running service: stop it first so its program file can be replaced
  ${If} ${FileExists} "$INSTDIR\awqd.exe"
    nsExec::ExecToLog '"$INSTDIR\awqd.exe" --uninstall-service'
    Pop $0
  ${EndIf}

  SetOutPath "$INSTDIR"
  File "${BINDIR}/awqd.exe"
  File "${BINDIR}/awq.exe"
  File "${BINDIR}/awq-tray.exe"
  File "${BINDIR}/awq-run.exe"
  File "${BINDIR}/awq-mkmodel.exe"
  File "${BINDIR}/libawq.dll"

  SetOutPath "$INSTDIR\include"
  File "${SRCDIR}/client/include/awq.h"
  File "${SRCDIR}/common/awq_err.h"
  SetOutPath "$INSTDIR\lib"
  File "${AWQ_LIBDIR}/libawq.a"
  File "${AWQ_LIBDIR}/libawq.dll.a"

  ; pkg-config file for this folder (the build's own names its install prefix)
  CreateDirectory "$INSTDIR\lib\pkgconfig"
  FileOpen $0 "$INSTDIR\lib\pkgconfig\libawq.pc" w
  FileWrite $0 "prefix=$INSTDIR$\r$\n"
  FileWrite $0 "libdir=$${prefix}/lib$\r$\n"
  FileWrite $0 "includedir=$${prefix}/include$\r$\n$\r$\n"
  FileWrite $0 "Name: libawq$\r$\n"
  FileWrite $0 "Description: Client library for awqd, the local 4-bit AWQ inference service$\r$\n"
  FileWrite $0 "Version: ${VERSION}$\r$\n"
  FileWrite $0 "Libs: -L$${libdir} -lawq$\r$\n"
  FileWrite $0 "Libs.private: -lws2_32 -ladvapi32$\r$\n"
  FileWrite $0 "Cflags: -I$${includedir}$\r$\n"
  FileClose $0

  ; default settings, only when there are none: an upgrade keeps the operator's file
  CreateDirectory "$APPDATA\awqd"
  ${IfNot} ${FileExists} "$APPDATA\awqd\awqd.ini"
    SetOutPath "$APPDATA\awqd"
    File "/oname=awqd.ini" "${SRCDIR}/installer/awqd.ini"
  ${EndIf}
  SetOutPath "$INSTDIR"

  CreateDirectory "$SMPROGRAMS\awqd"
  CreateShortCut "$SMPROGRAMS\awqd\awq tray.lnk" "$INSTDIR\awq-tray.exe"
  CreateShortCut "$SMPROGRAMS\awqd\awqd settings.lnk" "notepad.exe" '"$APPDATA\awqd\awqd.ini"'
  CreateShortCut "$SMPROGRAMS\awqd\Uninstall awqd.lnk" "$INSTDIR\uninstall.exe"

  WriteUninstaller "$INSTDIR\uninstall.exe"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "awqd ${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "awqd"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
SectionEnd

Section "Windows service" SecService
  SetShellVarContext all
  ; --config names the file explicitly: the service runs as LocalSystem, whose environment
  ; need not be the installer's
  nsExec::ExecToLog '"$INSTDIR\awqd.exe" --install-service --config "$APPDATA\awqd\awqd.ini"'
  Pop $0
  ${If} $0 != 0
    DetailPrint "awqd.exe --install-service failed (exit $0)"
    MessageBox MB_OK|MB_ICONEXCLAMATION "The awqd service could not be installed (exit code $0)." /SD IDOK
  ${EndIf}
SectionEnd

Section /o "Start the tray at logon" SecTray
  WriteRegStr HKCU "${RUN_KEY}" "awq-tray" '"$INSTDIR\awq-tray.exe"'
SectionEnd

!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecCore} "awqd, awq, awq-tray, awq-run, awq-mkmodel, libawq and the default settings."
  !insertmacro MUI_DESCRIPTION_TEXT ${SecService} "Register the demand-start service $\"awqd$\" (start it with: net start awqd)."
  !insertmacro MUI_DESCRIPTION_TEXT ${SecTray} "Start awq-tray when you log on (this user)."
!insertmacro MUI_FUNCTION_DESCRIPTION_END

; ------------------------------------------------------------------ uninstall ----

Section "un.awqd (required)" UnSecCore
  SectionIn RO
  SetShellVarContext all
  ; stop (drain) and remove the service; not installed is fine
  ${If} ${FileExists} "$INSTDIR\awqd.exe"
    nsExec::ExecToLog '"$INSTDIR\awqd.exe" --uninstall-service'
    Pop $0
  ${EndIf}
  DeleteRegValue HKCU "${RUN_KEY}" "awq-tray"

  Delete "$INSTDIR\awqd.exe"
  Delete "$INSTDIR\awq.exe"
  Delete "$INSTDIR\awq-tray.exe"
  Delete "$INSTDIR\awq-run.exe"
  Delete "$INSTDIR\awq-mkmodel.exe"
  Delete "$INSTDIR\libawq.dll"
  Delete "$INSTDIR\include\awq.h"
  Delete "$INSTDIR\include\awq_err.h"
  RMDir "$INSTDIR\include"
  Delete "$INSTDIR\lib\libawq.a"
  Delete "$INSTDIR\lib\libawq.dll.a"
  Delete "$INSTDIR\lib\pkgconfig\libawq.pc"
  RMDir "$INSTDIR\lib\pkgconfig"
  RMDir "$INSTDIR\lib"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR" ; only when empty: never remove what someone else put there

  Delete "$SMPROGRAMS\awqd\awq tray.lnk"
  Delete "$SMPROGRAMS\awqd\awqd settings.lnk"
  Delete "$SMPROGRAMS\awqd\Uninstall awqd.lnk"
  RMDir "$SMPROGRAMS\awqd"
  DeleteRegKey HKLM "${UNINST_KEY}"
SectionEnd

; Off by default: settings and logs outlive an uninstall (and a reinstall finds them).
Section /o "un.Settings and logs" UnSecSettings
  SetShellVarContext all
  Delete "$APPDATA\awqd\awqd.ini"
  RMDir /r "$APPDATA\awqd\logs"
  RMDir "$APPDATA\awqd"
SectionEnd

!insertmacro MUI_UNFUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${UnSecCore} "The programs, the service, the Start-menu entries."
  !insertmacro MUI_DESCRIPTION_TEXT ${UnSecSettings} "Also delete %PROGRAMDATA%\awqd (awqd.ini and the logs)."
!insertmacro MUI_UNFUNCTION_DESCRIPTION_END

Function un.onInit
  SetRegView 64
  ; /REMOVESETTINGS on the command line ticks the settings box (the only way when silent)
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/REMOVESETTINGS" $R1
  ${IfNot} ${Errors}
    !insertmacro SelectSection ${UnSecSettings}
  ${EndIf}
FunctionEnd
