// Types of render.js, which is plain JavaScript because the browser runs it as it is.
import type { JobListItem } from '../views.js';

export function escapeHtml(value: unknown): string;
export function formatDuration(ms: number | null | undefined): string;
export function formatAge(ms: number): string;
export function formatInZone(iso: string | null | undefined, timeZone: string): string;
export function progressOf(current: JobListItem['current'], now: number): { percent: number; etaMs: number | undefined } | undefined;
export function statusBadge(status: string): string;
export function currentCell(job: JobListItem, now: number): string;
export function fillAges(html: string, now: number): string;
export function renderJobRow(job: JobListItem, now: number): string;
export const JOB_TABLE_HEAD: string;
