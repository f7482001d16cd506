/** The console surface as a module: the chat in a terminal (`projectx shell`, `projectx chat`). Nothing to configure. */
import { defineModule } from '../../module.ts';
import { chatVerb, shellVerb } from './verbs.ts';

export const consoleModule = defineModule({
  id: 'console',
  title: 'Console (the bot in a terminal)',
  kind: 'platform',
  configuredBy: [],
  verbs: [shellVerb, chatVerb],
});
