package org.slf4j.impl;

import org.slf4j.ILoggerFactory;
import org.slf4j.Logger;
import org.slf4j.helpers.FormattingTuple;
import org.slf4j.helpers.MarkerIgnoringBase;
import org.slf4j.helpers.MessageFormatter;
import org.slf4j.spi.LoggerFactoryBinder;

import java.time.LocalTime;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A tiny slf4j 1.7 binding for the Klamm Java-client tests (the jars from PyPI ship
 * slf4j-api without a binding). Writes to stderr at the level of $KLAMM_JAVA_LOG
 * (trace, debug, info, warn (default), error, off), so the client's own warnings (error
 * codes it received, APIs it found unsupported) land in the test's output. A logger
 * name prefix can get its own level: KLAMM_JAVA_LOG="warn,org.apache.kafka.clients.NetworkClient=debug".
 */
public final class StaticLoggerBinder implements LoggerFactoryBinder {
    public static String REQUESTED_API_VERSION = "1.6.99";
    private static final StaticLoggerBinder SINGLETON = new StaticLoggerBinder();
    private final ILoggerFactory factory = new KlammLoggerFactory();

    public static StaticLoggerBinder getSingleton() {
        return SINGLETON;
    }

    @Override
    public ILoggerFactory getLoggerFactory() {
        return factory;
    }

    @Override
    public String getLoggerFactoryClassStr() {
        return KlammLoggerFactory.class.getName();
    }
}

final class KlammLoggerFactory implements ILoggerFactory {
    private final ConcurrentHashMap<String, Logger> loggers = new ConcurrentHashMap<>();
    private final int defaultLevel;
    private final String[] prefixes;
    private final int[] prefixLevels;

    KlammLoggerFactory() {
        String spec = System.getenv().getOrDefault("KLAMM_JAVA_LOG", "warn");
        int level = KlammLogger.WARN;
        java.util.List<String> ps = new java.util.ArrayList<>();
        java.util.List<Integer> ls = new java.util.ArrayList<>();
        for (String part : spec.split(",")) {
            part = part.trim();
            if (part.isEmpty()) continue;
            int eq = part.indexOf('=');
            if (eq < 0) {
                level = KlammLogger.parse(part);
            } else {
                ps.add(part.substring(0, eq));
                ls.add(KlammLogger.parse(part.substring(eq + 1)));
            }
        }
        defaultLevel = level;
        prefixes = ps.toArray(new String[0]);
        prefixLevels = ls.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public Logger getLogger(String name) {
        return loggers.computeIfAbsent(name, n -> {
            int level = defaultLevel;
            int best = -1;
            for (int i = 0; i < prefixes.length; i++) {
                if (n.startsWith(prefixes[i]) && prefixes[i].length() > best) {
                    best = prefixes[i].length();
                    level = prefixLevels[i];
                }
            }
            return new KlammLogger(n, level);
        });
    }
}

final class KlammLogger extends MarkerIgnoringBase {
    static final int TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4, OFF = 5;
    private static final String[] NAMES = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
    private final int level;
    private final String shortName;

    static int parse(String s) {
        switch (s.trim().toLowerCase()) {
            case "trace": return TRACE;
            case "debug": return DEBUG;
            case "info": return INFO;
            case "error": return ERROR;
            case "off": return OFF;
            default: return WARN;
        }
    }

    KlammLogger(String name, int level) {
        this.name = name;
        this.level = level;
        this.shortName = name.substring(name.lastIndexOf('.') + 1);
    }

    private void log(int at, String msg, Throwable t) {
        if (at < level) return;
        StringBuilder sb = new StringBuilder();
        sb.append(LocalTime.now()).append(' ').append(NAMES[at]).append(' ')
            .append('[').append(Thread.currentThread().getName()).append("] ")
            .append(shortName).append(": ").append(msg);
        synchronized (System.err) {
            System.err.println(sb);
            if (t != null) t.printStackTrace(System.err);
        }
    }

    private void fmt(int at, FormattingTuple ft) {
        log(at, ft.getMessage(), ft.getThrowable());
    }

    public boolean isTraceEnabled() { return level <= TRACE; }
    public void trace(String msg) { log(TRACE, msg, null); }
    public void trace(String f, Object a) { if (isTraceEnabled()) fmt(TRACE, MessageFormatter.format(f, a)); }
    public void trace(String f, Object a, Object b) { if (isTraceEnabled()) fmt(TRACE, MessageFormatter.format(f, a, b)); }
    public void trace(String f, Object... a) { if (isTraceEnabled()) fmt(TRACE, MessageFormatter.arrayFormat(f, a)); }
    public void trace(String msg, Throwable t) { log(TRACE, msg, t); }

    public boolean isDebugEnabled() { return level <= DEBUG; }
    public void debug(String msg) { log(DEBUG, msg, null); }
    public void debug(String f, Object a) { if (isDebugEnabled()) fmt(DEBUG, MessageFormatter.format(f, a)); }
    public void debug(String f, Object a, Object b) { if (isDebugEnabled()) fmt(DEBUG, MessageFormatter.format(f, a, b)); }
    public void debug(String f, Object... a) { if (isDebugEnabled()) fmt(DEBUG, MessageFormatter.arrayFormat(f, a)); }
    public void debug(String msg, Throwable t) { log(DEBUG, msg, t); }

    public boolean isInfoEnabled() { return level <= INFO; }
    public void info(String msg) { log(INFO, msg, null); }
    public void info(String f, Object a) { if (isInfoEnabled()) fmt(INFO, MessageFormatter.format(f, a)); }
    public void info(String f, Object a, Object b) { if (isInfoEnabled()) fmt(INFO, MessageFormatter.format(f, a, b)); }
    public void info(String f, Object... a) { if (isInfoEnabled()) fmt(INFO, MessageFormatter.arrayFormat(f, a)); }
    public void info(String msg, Throwable t) { log(INFO, msg, t); }

    public boolean isWarnEnabled() { return level <= WARN; }
    public void warn(String msg) { log(WARN, msg, null); }
    public void warn(String f, Object a) { if (isWarnEnabled()) fmt(WARN, MessageFormatter.format(f, a)); }
    public void warn(String f, Object a, Object b) { if (isWarnEnabled()) fmt(WARN, MessageFormatter.format(f, a, b)); }
    public void warn(String f, Object... a) { if (isWarnEnabled()) fmt(WARN, MessageFormatter.arrayFormat(f, a)); }
    public void warn(String msg, Throwable t) { log(WARN, msg, t); }

    public boolean isErrorEnabled() { return level <= ERROR; }
    public void error(String msg) { log(ERROR, msg, null); }
    public void error(String f, Object a) { if (isErrorEnabled()) fmt(ERROR, MessageFormatter.format(f, a)); }
    public void error(String f, Object a, Object b) { if (isErrorEnabled()) fmt(ERROR, MessageFormatter.format(f, a, b)); }
    public void error(String f, Object... a) { if (isErrorEnabled()) fmt(ERROR, MessageFormatter.arrayFormat(f, a)); }
    public void error(String msg, Throwable t) { log(ERROR, msg, t); }
}
