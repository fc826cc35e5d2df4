import type { Command } from 'commander';
import { planSteps } from '../../runner/phases/index.js';
import { createTarget } from '../../targets/create.js';
import { examples, globals, load, outputOption, print, requireJob } from '../context.js';
import { buildPlan, type OutputFormat, renderPlanText } from '../render.js';

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('show what a refresh of <job> would do, without touching anything')
    .addHelpText('after', examples(['db-refresher plan qa', 'db-refresher plan qa -o yaml > plan.yaml']))
    .argument('<job>', 'job name')
    .addOption(outputOption().default('text'))
    .action((name: string, options: { output: OutputFormat }, command: Command) => {
      const config = load(globals(command));
      const job = requireJob(config, name);
      const target = createTarget(config, job).describe();
      const plan = buildPlan(job, target, planSteps(job, target));
      print(plan, options.output, () => renderPlanText(plan));
    });
}
