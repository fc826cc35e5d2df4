/**
 * Checks a value against the subset of JSON Schema a Kubernetes structural
 * schema uses (types, properties, additionalProperties, items, required, enum,
 * pattern, lengths and bounds, int-or-string as anyOf), the way the API server
 * does with fieldValidation=Strict: an unknown field is an error, never
 * silently dropped. It walks the value, not the schema, so a few keys in a
 * 250 kB schema cost microseconds (compiling the whole schema with a general
 * validator takes seconds). Pure.
 */

export interface StructuralSchema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, StructuralSchema>;
  additionalProperties?: boolean | StructuralSchema;
  items?: StructuralSchema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  anyOf?: StructuralSchema[];
}

export interface StructuralProblem {
  path: Array<string | number>;
  message: string;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function accepts(type: string, actual: string): boolean {
  return type === actual || (type === 'number' && actual === 'integer');
}

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

export function checkStructural(value: unknown, schema: StructuralSchema, path: Array<string | number> = []): StructuralProblem[] {
  const problems: StructuralProblem[] = [];
  const fail = (message: string, at = path): void => {
    problems.push({ path: at, message });
  };
  const actual = typeOf(value);

  if (schema.anyOf) {
    if (!schema.anyOf.some((option) => checkStructural(value, option, path).length === 0)) {
      const types = schema.anyOf.map((o) => o.type).filter(Boolean);
      fail(`must be ${types.map((t) => article(String(t))).join(' or ')}, not ${article(actual)}`);
    }
    return problems;
  }
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length > 0 && !types.some((t) => accepts(t, actual))) {
    fail(`must be ${types.map(article).join(' or ')}, not ${article(actual)}`);
    return problems;
  }
  if (schema.enum && !schema.enum.includes(value)) {
    fail(`${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) fail(`"${value}" does not match ${schema.pattern}`);
    if (schema.minLength !== undefined && value.length < schema.minLength) fail(`must be at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) fail(`must be at most ${schema.maxLength} characters`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) fail(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) fail(`must be at most ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) fail(`needs at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`takes at most ${schema.maxItems} items`);
    const items = schema.items;
    if (items) {
      for (const [i, item] of value.entries()) problems.push(...checkStructural(item, items, [...path, i]));
    }
  }
  if (actual === 'object') {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (object[key] === undefined) fail(`is required`, [...path, key]);
    for (const [key, child] of Object.entries(object)) {
      const known = schema.properties?.[key];
      if (known) problems.push(...checkStructural(child, known, [...path, key]));
      else if (typeof schema.additionalProperties === 'object') {
        problems.push(...checkStructural(child, schema.additionalProperties, [...path, key]));
      } else if (schema.additionalProperties === false) {
        const near = Object.keys(schema.properties ?? {}).find((k) => k.toLowerCase() === key.toLowerCase());
        fail(`unknown field "${key}"${near ? `; did you mean "${near}"?` : ''}`, [...path, key]);
      }
    }
  }
  return problems;
}
