/**
 * The common OpenAI-compatible services: choosing one fills the API URL and suggests models. URLs and
 * model ids as each vendor documents its OpenAI-compatible endpoint (checked 2025): DeepSeek
 * api-docs.deepseek.com, DashScope "compatible-mode" (help.aliyun.com/zh/model-studio), Moonshot
 * platform.moonshot.cn/docs, Zhipu open.bigmodel.cn/dev/api (paas/v4), SiliconFlow docs.siliconflow.cn,
 * OpenRouter openrouter.ai/docs, Ollama github.com/ollama/ollama/blob/main/docs/openai.md.
 */
export interface ProviderPreset {
  id: string;
  /** Shown as is: these are the services' own names. */
  name: string;
  api_url: string;
  models: string[];
}

export const PROVIDER_PRESETS: readonly ProviderPreset[] = [
  { id: 'deepseek', name: 'DeepSeek', api_url: 'https://api.deepseek.com/v1', models: ['deepseek-chat', 'deepseek-reasoner'] },
  { id: 'dashscope', name: '通义千问 Qwen (DashScope)', api_url: 'https://dashscope.aliyuncs.com/compatible-mode/v1', models: ['qwen-plus', 'qwen-max', 'qwen-turbo'] },
  { id: 'moonshot', name: 'Moonshot Kimi', api_url: 'https://api.moonshot.cn/v1', models: ['moonshot-v1-8k', 'moonshot-v1-32k', 'kimi-latest'] },
  { id: 'zhipu', name: '智谱 GLM', api_url: 'https://open.bigmodel.cn/api/paas/v4', models: ['glm-4-plus', 'glm-4-air', 'glm-4-flash'] },
  { id: 'siliconflow', name: 'SiliconFlow 硅基流动', api_url: 'https://api.siliconflow.cn/v1', models: ['deepseek-ai/DeepSeek-V3', 'Qwen/Qwen2.5-72B-Instruct'] },
  { id: 'openrouter', name: 'OpenRouter', api_url: 'https://openrouter.ai/api/v1', models: ['deepseek/deepseek-chat', 'openai/gpt-4o-mini', 'anthropic/claude-3.5-sonnet'] },
  { id: 'ollama', name: 'Ollama', api_url: 'http://localhost:11434/v1', models: ['qwen2.5:7b', 'llama3.1:8b'] },
];

/** The preset whose URL a provider already uses (so editing one still suggests its models). */
export const presetOfUrl = (url: string) => PROVIDER_PRESETS.find((p) => p.api_url === url.trim().replace(/\/+$/, ''));
