/* log: one line per event on stderr (pierd points stderr at log_file). */
#ifndef PIER_LOG_H
#define PIER_LOG_H

enum log_level { PIER_LOG_ERROR = 0, PIER_LOG_WARN = 1, PIER_LOG_INFO = 2, PIER_LOG_DEBUG = 3 };

/* Set the minimum level printed and the process role shown in each line. */
void log_setup(enum log_level level, const char *role);
/* Parse "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(PIER_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(PIER_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(PIER_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(PIER_LOG_DEBUG, __VA_ARGS__)

#endif
