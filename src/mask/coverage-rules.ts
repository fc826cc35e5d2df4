import type { CoverageFinding } from './record.js';

/**
 * How the coverage check decides that a column looks personal: rules on the
 * column's name, and rules on a bounded sample of its values. The patterns
 * run on the server (see coverage-queries.ts); the checksums (IBAN mod 97,
 * Luhn) run here on the few candidate values the server returns. Pure.
 */

/** Column-name rules: a rule matches when a word of the name (split at _, -, digits and camelCase) matches. */
export const NAME_RULES: ReadonlyArray<{ rule: string; words: RegExp }> = [
  { rule: 'email', words: /^(e?mails?|emailaddress)$/ },
  { rule: 'phone', words: /^(phone|phones|tel|telephone|mobile|cell|cellphone|fax|msisdn)$/ },
  { rule: 'name', words: /^(name|names|firstname|lastname|fullname|surname|forename|givenname|familyname|middlename|maidenname)$/ },
  { rule: 'address', words: /^(address|addr|street|postcode|zip|zipcode|postalcode)$/ },
  { rule: 'iban', words: /^(iban|bic|swift)$/ },
  { rule: 'card', words: /^(card|cards|pan|ccnum|creditcard|cardnumber|cvv|cvc)$/ },
  { rule: 'ssn', words: /^(ssn|sin|nino|passport|taxid|tin|nationalid|socialsecurity)$/ },
  { rule: 'birth', words: /^(birth|birthday|birthdate|dob)$/ },
];

/** Words of a column name: `customerEmail2` → customer, email; `date_of_birth` → date, of, birth; also joined pairs (first_name → firstname). */
export function nameWords(column: string): string[] {
  const words = column
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter((w) => w.length > 0);
  const pairs = words.slice(1).map((w, i) => `${words[i]}${w}`);
  return [...words, ...pairs];
}

/**
 * The type categories (pg_type.typcategory) a column needs for a name rule to
 * apply: text, JSON and other user types, arrays and composites can hold
 * anything; a number can be a phone, card or id number; a date a birth date.
 * So `email_verified boolean`, `address_id int` and `phone_confirmed_at
 * timestamptz` are not findings.
 */
const ANY_VALUE = 'SUAC';
const NAME_RULE_CATEGORIES: Readonly<Record<string, string>> = {
  email: ANY_VALUE,
  phone: `${ANY_VALUE}N`,
  name: ANY_VALUE,
  address: ANY_VALUE,
  iban: ANY_VALUE,
  card: `${ANY_VALUE}N`,
  ssn: `${ANY_VALUE}N`,
  birth: `${ANY_VALUE}D`,
};

/** The name rules a column matches; with its type category, only those whose data the type can hold. */
export function nameRules(column: string, category?: string): string[] {
  const words = nameWords(column);
  return NAME_RULES.filter((r) => words.some((w) => r.words.test(w)))
    .map((r) => r.rule)
    .filter((rule) => category === undefined || (NAME_RULE_CATEGORIES[rule] ?? ANY_VALUE).includes(category));
}

/**
 * Value patterns, written so that PostgreSQL (ARE) and JavaScript read them
 * alike: the server applies them to values sampled from the statistics, and
 * this module to values read from tables that have no statistics. A value rule matches a column when at least
 * `share` of its non-NULL sampled values match.
 */
export const VALUE_PATTERNS = {
  /** The whole value is an e-mail address. */
  email: '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$',
  /** An e-mail address anywhere in free text. */
  emailInText: '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}',
  /**
   * International (+ or 00) or national (leading 0 with separators) phone numbers, 7 to 15 digits,
   * or North American numbers written with separators: (415) 555-0101, 415-555-0101, 415.555.0101.
   */
  phone:
    '^(\\+|00)[1-9][0-9 ()./-]{6,20}[0-9]$|^\\(?0[1-9][0-9]{0,4}\\)?[ ./-][0-9][0-9 ./-]{4,14}[0-9]$|^(\\([2-9][0-9]{2}\\) ?|[2-9][0-9]{2}[-.])[0-9]{3}[-.][0-9]{4}$',
  /** 13 to 19 digits, possibly grouped with spaces or dashes: a card number if it passes Luhn. */
  cardCandidate: '^[0-9]{4}([ -]?[0-9]){9,15}$',
  /** Two letters, two check digits, 11 to 30 letters or digits (spaces allowed): an IBAN if mod 97 = 1. */
  ibanCandidate: '^[A-Za-z]{2}[0-9]{2}( ?[A-Za-z0-9]){11,30}$',
} as const;

const SHARE = { email: 0.5, phone: 0.5, emailInText: 0.2, card: 0.5, iban: 0.5 } as const;

/** Luhn check over the digits of a value (spaces and dashes ignored). */
export function passesLuhn(value: string): boolean {
  const digits = value.replace(/[ -]/g, '');
  if (!/^[0-9]{13,19}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** ISO 13616 check: move the first four characters to the end, letters to 10–35, the number mod 97 must be 1. */
export function isValidIban(value: string): boolean {
  const iban = value.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const char of rearranged) {
    const n = char >= 'A' ? char.charCodeAt(0) - 55 : Number(char);
    remainder = (remainder * (n >= 10 ? 100 : 10) + n) % 97;
  }
  return remainder === 1;
}

/**
 * Substrings (LIKE patterns, cheaper than one long regular expression) that a
 * column name must contain for a name rule to possibly match, so the server
 * returns only those columns (and the ones whose values match).
 */
export const NAME_PREFILTER =
  'mail phone tel mobile cell fax msisdn name addr street post zip iban bic swift card pan ccnum cvv cvc ssn sin nino passport tax tin national social birth dob'
    .split(' ')
    .map((word) => `%${word}%`);

/** Counts of sampled values per value pattern, from values read in Node. */
export function evidenceFromValues(
  where: { database: string; schema: string; table: string; column: string; category?: string | undefined },
  values: readonly string[],
): ColumnEvidence {
  const test = (pattern: string) => {
    const re = new RegExp(pattern);
    return values.filter((v) => re.test(v));
  };
  const email = test(VALUE_PATTERNS.email);
  return {
    ...where,
    sampled: values.length,
    emailValues: email.length,
    phoneValues: test(VALUE_PATTERNS.phone).length,
    emailInText: test(VALUE_PATTERNS.emailInText).length - email.length,
    cardCandidates: test(VALUE_PATTERNS.cardCandidate),
    ibanCandidates: test(VALUE_PATTERNS.ibanCandidate),
  };
}

/** What the server found for one column (see COVERAGE_COLUMNS). */
export interface ColumnEvidence {
  database: string;
  schema: string;
  table: string;
  column: string;
  /** pg_type.typcategory of the column (of a domain's base type), when known: which name rules can apply. */
  category?: string | undefined;
  /** Non-NULL values sampled (from the statistics, or read from the table). */
  sampled: number;
  emailValues: number;
  phoneValues: number;
  emailInText: number;
  cardCandidates: readonly string[];
  ibanCandidates: readonly string[];
}

/** Which rules match a column, with the evidence in words; empty when it does not look personal. */
export function classifyColumn(evidence: ColumnEvidence): { rules: string[]; matched: number; evidence: string[] } {
  const rules = nameRules(evidence.column, evidence.category).map((r) => `name:${r}`);
  const words: string[] = rules.length > 0 ? [`the name matches ${rules.map((r) => r.slice(5)).join(', ')}`] : [];
  let matched = 0;
  const { sampled } = evidence;
  const value = (rule: string, count: number, share: number, what: string) => {
    if (sampled === 0 || count === 0 || count / sampled < share) return;
    rules.push(`values:${rule}`);
    matched = Math.max(matched, count);
    words.push(`${count} of ${sampled} sampled values ${what}`);
  };
  value('email', evidence.emailValues, SHARE.email, 'are e-mail addresses');
  value('phone', evidence.phoneValues, SHARE.phone, 'are phone numbers');
  value('email-in-text', evidence.emailInText, SHARE.emailInText, 'contain an e-mail address');
  value('card', evidence.cardCandidates.filter(passesLuhn).length, SHARE.card, 'are card numbers (Luhn)');
  value('iban', evidence.ibanCandidates.filter(isValidIban).length, SHARE.iban, 'are IBANs (valid checksum)');
  return { rules, matched, evidence: words };
}

/** Whether the allow list leaves a whole database out (`database.*.*.*`): the check need not even connect to it. */
export function allowsWholeDatabase(allow: readonly string[], database: string): boolean {
  return allow.some((entry) => {
    const parts = entry.split('.');
    return parts.length === 4 && parts[0] === database && parts.slice(1).every((part) => part === '*');
  });
}

/**
 * Whether a column is on the allow list: `schema.table.column` (any database) or
 * `database.schema.table.column`, where a part may be `*` for any name, so
 * `reporting.*.*.*` allows a whole database and `public.audit_log.*` a table.
 */
export function isAllowed(allow: readonly string[], database: string, qualifiedColumn: string): boolean {
  const exact = (entry: string) => entry === qualifiedColumn || entry === `${database}.${qualifiedColumn}`;
  const parts = [database, ...qualifiedColumn.split('.')];
  const wildcard = (entry: string) => {
    const pattern = entry.split('.');
    const against = pattern.length === parts.length ? parts : parts.slice(1);
    return pattern.length === against.length && pattern.every((part, i) => part === '*' || part === against[i]);
  };
  return allow.some((entry) => exact(entry) || (entry.includes('*') && wildcard(entry)));
}

export function finding(evidence: ColumnEvidence, classified: { rules: string[]; matched: number; evidence: string[] }): CoverageFinding {
  return {
    database: evidence.database,
    table: `${evidence.schema}.${evidence.table}`,
    column: evidence.column,
    rules: classified.rules,
    sampled: evidence.sampled,
    matched: classified.matched,
    evidence: classified.evidence.join('; '),
  };
}
