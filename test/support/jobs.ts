/** The service's jobs and connectors, as src/main.ts derives them from the module list. */
import { connectorsOf, jobsOf } from '../../src/module.ts';
import { modules } from '../../src/modules.ts';

export const serviceJobs = jobsOf(modules);
export const serviceConnectors = connectorsOf(modules);
