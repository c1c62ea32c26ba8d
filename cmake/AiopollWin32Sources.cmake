# The Windows platform layer and the "win32" backend (docs/win32-backend.md).
# Included by the top-level CMakeLists.txt when WIN32; sets the three
# _aiopoll_platform_* variables it consumes.

set(_aiopoll_platform_sources
  src/win32/backend-win32.c
  src/win32/backends.c
  src/win32/event-notifier.c
  src/win32/platform.c
  src/win32/win32-waiters.c)

set(_aiopoll_platform_definitions
  WIN32_LEAN_AND_MEAN
  # Windows 7: SRW locks with TryAcquireSRWLockExclusive, InitOnce.
  _WIN32_WINNT=0x0601
  # getenv() is fine here; MSVC would flag it under /W4.
  _CRT_SECURE_NO_WARNINGS)

set(_aiopoll_platform_libraries ws2_32)
