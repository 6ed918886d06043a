#!/usr/bin/env python3
"""The reference checker of the dataset benchmark: the structural rules of common/dataset (every code but
too-long) written the plain way, with Python's json module, so that `npm run bench:dataset` can compare both
the speed and the finding counts of our byte-level checker with it.

    python3 bench/check_dataset.py FILE [--json]

Prints the number of findings per code, the examples, and the time of the check measured inside Python
(reading the file included, interpreter start excluded). With --json, one JSON object on stdout.

Known differences from the TypeScript checker, none of which the generated benchmark data contains: a key that
appears twice in one object is seen once here (json keeps the last), and nesting deeper than Python's recursion
limit is reported as json-syntax.
"""
import json
import sys
import time

CODES = [
    'json-syntax', 'not-object', 'messages-missing', 'messages-empty', 'message-invalid', 'role-unknown',
    'weight-invalid', 'system-not-first', 'no-pair', 'role-order', 'content-empty', 'key-unknown', 'line-blank',
    'too-long', 'duplicate', 'file-empty',
]
ERRORS = {'json-syntax', 'not-object', 'messages-missing', 'messages-empty', 'message-invalid', 'role-unknown',
          'weight-invalid', 'system-not-first', 'no-pair', 'role-order', 'file-empty'}

# What JavaScript's String.prototype.trim removes (str.strip() without arguments differs: it keeps U+FEFF and
# removes U+001C-U+001F and U+0085), so that content-empty means the same on both sides.
JS_SPACE = '\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a' \
           '\u2028\u2029\u202f\u205f\u3000\ufeff'
JSON_SPACE = b' \t\r\n'
MESSAGE_KEYS = {'role', 'content', 'weight', 'name'}
ROLES = {'system', 'user', 'assistant'}


def _no_constants(name):
    # json accepts NaN and Infinity; JSON.parse (and so our checker) does not.
    raise ValueError('not JSON: ' + name)


def check_line(text, count):
    """Adds the findings of one non-blank line to count; returns whether the line is an example."""
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        count['json-syntax'] += 1
        return False
    if type(value) is not dict:
        count['not-object'] += 1
        return False
    messages = value.get('messages')
    if type(messages) is not list:
        count['messages-missing'] += 1
        return False
    if not messages:
        count['messages-empty'] += 1
        return False
    for key in value:
        if key != 'messages':
            count['key-unknown'] += 1
    invalid = False
    roles = []
    for message in messages:
        if type(message) is not dict:
            count['message-invalid'] += 1
            invalid = True
            roles.append(None)
            continue
        role = message.get('role')
        content = message.get('content')
        role_ok = type(role) is str
        content_ok = type(content) is str
        roles.append(role if role_ok else None)
        if not role_ok or not content_ok:
            count['message-invalid'] += 1
            invalid = True
        elif role not in ROLES:
            count['role-unknown'] += 1
            invalid = True
        if 'weight' in message:
            weight = message['weight']
            if role_ok and (role == 'system' or role == 'user'):
                count['weight-invalid'] += 1
            elif type(weight) not in (int, float) or weight not in (0, 1):
                count['weight-invalid'] += 1
        if content_ok and not content.strip(JS_SPACE):
            count['content-empty'] += 1
        for key in message:
            if key not in MESSAGE_KEYS:
                count['key-unknown'] += 1
    for role in roles[1:]:
        if role == 'system':
            count['system-not-first'] += 1
    if invalid:
        return True
    turns = [role for role in roles if role == 'user' or role == 'assistant']
    if 'user' not in turns or 'assistant' not in turns:
        count['no-pair'] += 1
        return True
    expect = 'user'
    for role in turns:
        if role != expect:
            count['role-order'] += 1
            return True
        expect = 'assistant' if role == 'user' else 'user'
    if turns[-1] == 'user':
        count['role-order'] += 1
    return True


def check_file(path):
    """Counts the findings of a dataset file per code; returns (counts, examples, lines)."""
    with open(path, 'rb') as f:
        data = f.read()
    lines = data.split(b'\n')
    # A final newline ends the last line rather than starting an empty one.
    if lines and lines[-1] == b'':
        lines.pop()
    count = dict.fromkeys(CODES, 0)
    seen = {}
    examples = 0
    content = False
    for number, raw in enumerate(lines):
        if raw.endswith(b'\r'):
            raw = raw[:-1]
        body = raw[3:] if number == 0 and raw.startswith(b'\xef\xbb\xbf') else raw
        if not body.strip(JSON_SPACE):
            count['line-blank'] += 1
            continue
        content = True
        if raw in seen:
            count['duplicate'] += 1
        else:
            seen[raw] = number
        # Invalid UTF-8 becomes U+FFFD, as TextDecoder does, rather than an error.
        if check_line(body.decode('utf-8', 'replace'), count):
            examples += 1
    if not content:
        count['line-blank'] = 0
        count['file-empty'] = 1
    return count, examples, len(lines)


def main(argv):
    args = [a for a in argv if not a.startswith('--')]
    if len(args) != 1:
        sys.stderr.write('usage: check_dataset.py FILE [--json]\n')
        return 2
    started = time.perf_counter()
    count, examples, lines = check_file(args[0])
    seconds = time.perf_counter() - started
    errors = sum(n for code, n in count.items() if code in ERRORS)
    warnings = sum(n for code, n in count.items() if code not in ERRORS)
    if '--json' in argv:
        json.dump({'seconds': seconds, 'lines': lines, 'examples': examples, 'errors': errors,
                   'warnings': warnings, 'byCode': count}, sys.stdout)
        sys.stdout.write('\n')
    else:
        for code in CODES:
            if count[code]:
                print(f'{code:18} {count[code]}')
        print(f'{lines} lines, {examples} examples, {errors} errors, {warnings} warnings in {seconds:.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
