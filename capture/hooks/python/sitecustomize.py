# replaylink's Python hook, loaded by Python at start-up because replaylink
# puts this directory first on PYTHONPATH. The work is in _replaylink_hook;
# see capture/hooks/doc.go for the mark protocol.
#
# Two steps, in this order:
#  1. install the hook (it does nothing at all without a valid
#     REPLAYLINK_HOOK_NONCE or REPLAYLINK_HOOK_NONCE_FILE, and never raises);
#  2. run the sitecustomize this one hides, the next one on sys.path, as
#     Python would have without the hook. The hook goes first so that what the
#     user's sitecustomize sets up (logging handlers, servers) already sees the
#     marking streams and the patched classes. An error in the user's module is
#     left to reach site.py, which reports it as it always does.

try:
    import _replaylink_hook
except Exception:  # a broken copy of the hook must not stop the program
    _replaylink_hook = None

if _replaylink_hook is not None:
    _replaylink_hook.install()
    _replaylink_hook.run_next_sitecustomize(__file__)
