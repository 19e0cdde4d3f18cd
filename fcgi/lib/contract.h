/* contract: the contracts the headers state, made executable. PIER_MUST_USE
 * marks results a caller has to look at; PIER_ASSERT checks preconditions in
 * sanitizer builds (configure --enable-sanitizers or --enable-fuzzing define
 * PIER_ASSERTS) and aborts with the condition, file and line; elsewhere it
 * compiles to nothing, but the condition is still type-checked so it cannot
 * rot. Use it for a caller's mistake (a NULL the contract forbids, a digest
 * nobody checked), never for input from the network. */
#ifndef PIER_CONTRACT_H
#define PIER_CONTRACT_H

/* Before every function that returns pier_err (and the few whose bool says
 * "it failed"): the result is handled, or dropped with (void) where losing it
 * is the documented choice. C23's nodiscard where the compiler has it (gcc's
 * warn_unused_result does not accept a (void) cast), the GNU attribute
 * otherwise (clang honours the cast). */
#if defined(__has_c_attribute)
#if __has_c_attribute(nodiscard)
#define PIER_MUST_USE [[nodiscard]]
#endif
#endif
#ifndef PIER_MUST_USE
#define PIER_MUST_USE __attribute__((warn_unused_result))
#endif

#ifdef PIER_ASSERTS
#define PIER_ASSERT(cond)                                                                          \
    ((cond) ? (void)0 : pier_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define PIER_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

/* Check for leaks now (AddressSanitizer builds; nothing otherwise). For
 * processes that end with _exit(), which skips LeakSanitizer's own check at
 * exit: the workers and the maintenance child, so that a PGresult a handler
 * forgot is reported and fails the test run. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define PIER_LEAK_CHECK() __lsan_do_leak_check()
#else
#define PIER_LEAK_CHECK() ((void)0)
#endif

/* Log the broken contract and abort (the master replaces the worker). */
_Noreturn void pier_assert_fail(const char *cond, const char *file, int line, const char *func);

#endif
