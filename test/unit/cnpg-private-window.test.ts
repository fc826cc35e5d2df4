import { describe, expect, it } from 'vitest';
import type { NeutraliseSettings } from '../../src/config/types.js';
import {
  hbaLoaded,
  hbaReloadWanted,
  notYetOpen,
  type OpenedFacts,
  openPatch,
  userWindowSettings,
  withPrivateWindow,
} from '../../src/targets/cnpg/private-window.js';
import { buildCustomConf, buildInstanceHba, userParameters } from '../cnpg-sim/instance-config.js';

const settings: NeutraliseSettings = { synchronousReplication: true, subscriptions: true, cron: true, passwords: false, keepRoles: [] };

const opened: OpenedFacts = {
  pending_restart: 0,
  // Loaded at 12:00:05.000300, the file written during 12:00:03.
  load_us: 1_700_000_005_000_300,
  hba_mtime_s: 1_700_000_003,
  reject_all: 0,
  settings: { max_logical_replication_workers: ['4', '4'] },
  libraries: '',
};

describe('opening a CNPG clone', () => {
  it('reads the user settings the window changes from the rendered spec', () => {
    expect(
      userWindowSettings({
        enableSuperuserAccess: true,
        postgresql: { pg_hba: ['host app app 10.0.0.0/8 scram-sha-256'], parameters: { work_mem: '8MB' } },
      }),
    ).toEqual({
      userHba: ['host app app 10.0.0.0/8 scram-sha-256'],
      userParameters: { work_mem: '8MB' },
      userSuperuserAccess: true,
      userAlterSystem: undefined,
      userLibraries: undefined,
    });
  });

  it('opens access first (keeping superuser access on, for a resumed open), and superuser access and ALTER SYSTEM after, back to the user values', () => {
    const user = { userHba: ['host app app 10.0.0.0/8 scram-sha-256'], userSuperuserAccess: false, userAlterSystem: true };
    expect(openPatch({ ...user, settings, part: 'access' })).toEqual({
      spec: {
        enableSuperuserAccess: true,
        postgresql: {
          pg_hba: ['host app app 10.0.0.0/8 scram-sha-256'],
          parameters: { max_logical_replication_workers: null },
        },
      },
    });
    expect(openPatch({ ...user, settings, part: 'superuser' })).toEqual({
      spec: { enableSuperuserAccess: false, postgresql: { enableAlterSystem: true } },
    });
  });

  it('is open once the parameters are back, nothing waits for a restart and pg_hba was reloaded without the reject rule', () => {
    expect(notYetOpen(opened, { settings })).toBeUndefined();
    expect(notYetOpen({ ...opened, reject_all: 1 }, { settings })).toContain('reject rule');
    // The user's own catch-all reject rule is not the window's.
    expect(notYetOpen({ ...opened, reject_all: 1 }, { settings, userHba: ['host all all all reject'] })).toBeUndefined();
    expect(notYetOpen({ ...opened, load_us: 1_700_000_002_999_999 }, { settings })).toContain('reload');
    expect(notYetOpen({ ...opened, settings: { max_logical_replication_workers: ['0', '4'] } }, { settings })).toContain(
      'max_logical_replication_workers is still 0',
    );
    expect(
      notYetOpen(
        { ...opened, settings: { max_logical_replication_workers: ['2', '4'] } },
        { settings, userParameters: { max_logical_replication_workers: '2' } },
      ),
    ).toBeUndefined();
    expect(notYetOpen({ ...opened, pending_restart: 1 }, { settings })).toContain('restart');
    expect(notYetOpen(opened, { settings, userLibraries: ['pg_cron'] })).toContain('pg_cron is not loaded yet');
    expect(notYetOpen({ ...opened, libraries: 'pg_stat_statements, pg_cron' }, { settings, userLibraries: ['pg_cron'] })).toBeUndefined();
  });

  it('believes pg_hba.conf loaded only when the load came in a later second than the write, or after a reload it asked for', () => {
    const write = 1_700_000_003;
    // The mtime has whole seconds: a load in the same second may precede the write (12:00:03.9 write, 12:00:03.2 load).
    expect(hbaLoaded({ load_us: 1_700_000_003_200_000, hba_mtime_s: write })).toBe(false);
    expect(hbaLoaded({ load_us: 1_700_000_003_999_999, hba_mtime_s: write })).toBe(false);
    expect(hbaLoaded({ load_us: 1_700_000_002_500_000, hba_mtime_s: write })).toBe(false);
    expect(hbaLoaded({ load_us: 1_700_000_004_000_000, hba_mtime_s: write })).toBe(true);
    // A reload asked for after the file was seen as it is: loaded once the load time reaches the ask.
    const asked = { at_us: 1_700_000_003_500_000, hba_mtime_s: write };
    expect(hbaLoaded({ load_us: 1_700_000_003_400_000, hba_mtime_s: write }, asked)).toBe(false);
    expect(hbaLoaded({ load_us: 1_700_000_003_500_100, hba_mtime_s: write }, asked)).toBe(true);
    // The file was written again since the ask: the ask proves nothing about it.
    expect(hbaLoaded({ load_us: 1_700_000_004_500_100, hba_mtime_s: write + 1 }, asked)).toBe(false);
    const sameSecond = { ...opened, load_us: 1_700_000_003_200_000, hba_mtime_s: write };
    expect(notYetOpen(sameSecond, { settings })).toContain('written after the last configuration reload');
    expect(notYetOpen({ ...sameSecond, load_us: 1_700_000_003_600_000 }, { settings }, asked)).toBeUndefined();
  });

  it('asks for a reload only when the file holds the user rules, its load is unproven and no ask since its last write is pending', () => {
    const write = 1_700_000_003;
    const sameSecond = { ...opened, load_us: 1_700_000_003_200_000, hba_mtime_s: write };
    expect(hbaReloadWanted(sameSecond, {})).toBe(true);
    // Still the window's rules in the file: CloudNativePG has not written the user's yet; a reload would load the window's.
    expect(hbaReloadWanted({ ...sameSecond, reject_all: 1 }, {})).toBe(false);
    expect(hbaReloadWanted(opened, {})).toBe(false);
    const asked = { at_us: 1_700_000_003_500_000, hba_mtime_s: write };
    expect(hbaReloadWanted(sameSecond, {}, asked)).toBe(false);
    expect(hbaReloadWanted({ ...sameSecond, hba_mtime_s: write + 1, load_us: 1_700_000_004_100_000 }, {}, asked)).toBe(true);
  });

  it('withholds pg_cron during the window, keeping cron.database_name so neutralise finds the jobs, and puts it back at open', () => {
    const spec = { postgresql: { shared_preload_libraries: ['pg_cron', 'pg_partman_bgw'], parameters: { 'cron.database_name': 'app' } } };
    expect(withPrivateWindow(spec, settings).postgresql).toMatchObject({
      shared_preload_libraries: ['pg_partman_bgw'],
      parameters: { 'cron.database_name': 'app', max_logical_replication_workers: '0' },
    });
    expect(openPatch({ ...userWindowSettings(spec), settings, part: 'access' })).toEqual({
      spec: {
        enableSuperuserAccess: true,
        postgresql: {
          pg_hba: null,
          parameters: { max_logical_replication_workers: null, 'cron.database_name': 'app' },
          shared_preload_libraries: ['pg_cron', 'pg_partman_bgw'],
        },
      },
    });
    // cron: false in neutralise, or no pg_cron in the list: the libraries are left alone.
    expect(withPrivateWindow(spec, { ...settings, cron: false }).postgresql).toMatchObject({
      shared_preload_libraries: ['pg_cron', 'pg_partman_bgw'],
    });
  });
});

describe('the simulated instance manager configuration (CNPG 1.30, BEHAVIOUR.md §10.1, §10.3)', () => {
  it('puts user rules between the fixed rules and the default rule', () => {
    const lines = buildInstanceHba({ postgresql: { pg_hba: ['host all postgres all scram-sha-256', 'host all all all reject'] } })
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      'local all all trust',
      'hostssl postgres streaming_replica all cert',
      'hostssl replication streaming_replica all cert',
      'host all postgres all scram-sha-256',
      'host all all all reject',
      'host all all all scram-sha-256',
    ]);
  });

  it('drops fixed and blocked parameters and lists the spec libraries', () => {
    const spec = {
      postgresql: {
        parameters: { work_mem: '8MB', synchronous_standby_names: 'x', ssl_cert_file: '/x', 'cron.database_name': 'postgres' },
        shared_preload_libraries: ['pg_cron'],
      },
    };
    expect(userParameters(spec)).toEqual({ work_mem: '8MB', 'cron.database_name': 'postgres' });
    const conf = buildCustomConf(spec);
    expect(conf.text).toContain("shared_preload_libraries = 'pg_cron'");
    expect(conf.text).toContain(`cnpg.config_sha256 = '${conf.sha256}'`);
    expect(conf.text).not.toContain('synchronous_standby_names');
  });
});
