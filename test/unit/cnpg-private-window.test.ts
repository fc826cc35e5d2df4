import { describe, expect, it } from 'vitest';
import type { NeutraliseSettings } from '../../src/config/types.js';
import { notYetOpen, type OpenedFacts, openPatch, userWindowSettings, withPrivateWindow } from '../../src/targets/cnpg/private-window.js';
import { buildCustomConf, buildInstanceHba, userParameters } from '../cnpg-sim/instance-config.js';

const settings: NeutraliseSettings = { synchronousReplication: true, subscriptions: true, cron: true, passwords: false, keepRoles: [] };

const opened: OpenedFacts = {
  pending_restart: 0,
  hba_loaded: true,
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

  it('opens access first, and superuser access and ALTER SYSTEM after, back to the user values', () => {
    const user = { userHba: ['host app app 10.0.0.0/8 scram-sha-256'], userSuperuserAccess: true, userAlterSystem: true };
    expect(openPatch({ ...user, settings, part: 'access' })).toEqual({
      spec: {
        postgresql: {
          pg_hba: ['host app app 10.0.0.0/8 scram-sha-256'],
          parameters: { max_logical_replication_workers: null },
        },
      },
    });
    expect(openPatch({ ...user, settings, part: 'superuser' })).toEqual({
      spec: { enableSuperuserAccess: true, postgresql: { enableAlterSystem: true } },
    });
  });

  it('is open once the parameters are back, nothing waits for a restart and pg_hba was reloaded without the reject rule', () => {
    expect(notYetOpen(opened, { settings })).toBeUndefined();
    expect(notYetOpen({ ...opened, reject_all: 1 }, { settings })).toContain('reject rule');
    // The user's own catch-all reject rule is not the window's.
    expect(notYetOpen({ ...opened, reject_all: 1 }, { settings, userHba: ['host all all all reject'] })).toBeUndefined();
    expect(notYetOpen({ ...opened, hba_loaded: false }, { settings })).toContain('reload');
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

  it('withholds pg_cron during the window, keeping cron.database_name so neutralise finds the jobs, and puts it back at open', () => {
    const spec = { postgresql: { shared_preload_libraries: ['pg_cron', 'pg_partman_bgw'], parameters: { 'cron.database_name': 'app' } } };
    expect(withPrivateWindow(spec, settings).postgresql).toMatchObject({
      shared_preload_libraries: ['pg_partman_bgw'],
      parameters: { 'cron.database_name': 'app', max_logical_replication_workers: '0' },
    });
    expect(openPatch({ ...userWindowSettings(spec), settings, part: 'access' })).toEqual({
      spec: {
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
